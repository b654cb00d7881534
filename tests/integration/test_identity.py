"""Identity modes end to end: /coder link and unlink, chats run with the requester's own Coder token."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from bridge.db import repo
from bridge.db.models import UserLink
from bridge.relay.cipher import Opened, TokenCipher
from bridge.relay.identity import token_binding
from bridge.sim.slack import AppResponse
from tests.integration.conftest import CODER_TOKEN, World

KEY = Fernet.generate_key().decode()
BOB_TOKEN = "tok-bob-0123456789abcdef"


@pytest.fixture
async def linked(world: World) -> World:
    """The world's bridge restarted in linked identity mode; bob has a Coder token (not yet linked)."""
    await world.stop_bridge()
    await world.start_bridge(identity_mode="linked", encryption_key=SecretStr(KEY))
    world.coder.add_token(BOB_TOKEN, "bob")
    return world


async def link(world: World, user: str, token: str) -> AppResponse:
    """A person runs `/coder link` and submits the token in the modal."""
    await world.slack.slash_command(user, world.slack.general, "/coder", "link")
    assert world.slack.modal(user) is not None, "the link modal opened"
    return await world.slack.submit_view(user, {"token": {"token": token}})


async def user_link(world: World, user: str) -> UserLink | None:
    """The stored link of a Slack user, read from the bridge's database."""
    assert world.bridge is not None
    async with world.bridge.db.unit() as session:
        return await repo.find_user_link(session, team_id=world.slack.team_id, slack_user_id=user)


def opened_with(key: str, world: World, link: UserLink | None) -> Opened | None:
    """A stored link's token as ``key`` alone opens it for its own row (None: it does not)."""
    assert link is not None
    opened = TokenCipher([key]).unseal(
        link.token_ciphertext, token_binding(world.slack.team_id, link.slack_user_id)
    )
    return opened if isinstance(opened, Opened) else None


def whispered(world: World, user: str, words: str) -> bool:
    """Whether ``user`` was told something containing ``words`` privately."""
    return any(words in (e.markdown_text or e.text) for e in world.slack.ephemerals(user))


async def test_link_keeps_a_checked_token_encrypted(linked: World) -> None:
    """A token Coder accepts is stored encrypted; the modal confirms who it belongs to."""
    await link(linked, linked.slack.bob, BOB_TOKEN)
    modal = linked.slack.modal(linked.slack.bob)
    assert modal is not None
    assert "Linked to Coder user *bob*" in str(modal["blocks"])
    assert BOB_TOKEN not in str(modal)
    stored = await user_link(linked, linked.slack.bob)
    assert stored is not None
    assert BOB_TOKEN not in stored.token_ciphertext
    assert opened_with(KEY, linked, stored) == Opened(BOB_TOKEN)


async def test_link_refuses_a_token_coder_does_not_know(linked: World) -> None:
    """An unknown token is shown as an error on the field; nothing is stored."""
    await link(linked, linked.slack.bob, "tok-nobody-knows-this")
    assert "Coder refused this token" in linked.slack.view_errors(linked.slack.bob)["token"]
    assert linked.slack.modal(linked.slack.bob) is not None, "the modal stays open to try again"
    assert await user_link(linked, linked.slack.bob) is None


async def test_linked_chat_runs_as_its_requester(linked: World) -> None:
    """Bob's chat is created, followed and continued with bob's own token: Coder shows bob as owner."""
    await link(linked, linked.slack.bob, BOB_TOKEN)
    root = await linked.mention("fix the login bug", user=linked.slack.bob)
    await linked.until_idle_and_shown(root)
    await linked.reply(root, "and add a test", user=linked.slack.bob)
    await linked.until_idle_and_shown(root, turns=2)
    chat = linked.chat_of(root)
    assert chat.owner_id == linked.coder.users["bob"].id
    chat_requests = [r for r in linked.coder.requests if chat.id in r.path]
    assert chat_requests
    assert {r.token for r in chat_requests} == {BOB_TOKEN}, "stream and follow-up used bob's token"


async def test_unlinked_person_is_told_how_to_link(linked: World) -> None:
    """In linked mode a mention from someone without a link creates nothing and says how to link."""
    root = await linked.mention("fix it", user=linked.slack.alice)
    await linked.until(lambda: whispered(linked, linked.slack.alice, "/coder link"))
    assert linked.coder.chats == {}
    assert linked.bot_texts(root) == []


async def test_colleague_cannot_add_to_a_linked_chat(linked: World) -> None:
    """A reply by someone else in a linked chat's thread is refused privately and never reaches Coder."""
    await link(linked, linked.slack.bob, BOB_TOKEN)
    root = await linked.mention("fix the login bug", user=linked.slack.bob)
    await linked.until_idle_and_shown(root)
    await linked.reply(root, "also delete prod", user=linked.slack.alice)
    await linked.until(lambda: whispered(linked, linked.slack.alice, "Only <@U0BOB>"))
    assert sum(1 for m in linked.chat_of(root).messages if m["role"] == "user") == 1


async def test_revoked_token_breaks_the_link_and_tells_its_owner(linked: World) -> None:
    """A 401 for a linked token marks the link broken and tells its owner privately; nothing loops."""
    await link(linked, linked.slack.bob, BOB_TOKEN)
    root = await linked.mention("fix the login bug", user=linked.slack.bob)
    await linked.until_idle_and_shown(root)
    linked.coder.revoke_token(BOB_TOKEN)
    await linked.reply(root, "one more thing", user=linked.slack.bob)
    await linked.until(lambda: whispered(linked, linked.slack.bob, "Coder refused your linked token"))
    stored = await user_link(linked, linked.slack.bob)
    assert stored is not None
    assert stored.broken
    refused = sum(1 for r in linked.coder.requests if r.token == BOB_TOKEN)
    await linked.reply(root, "still there?", user=linked.slack.bob)
    await linked.until(lambda: whispered(linked, linked.slack.bob, "isn't linked"))
    assert len(linked.slack.ephemerals(linked.slack.bob)) == 2, "told once about the refused token"
    assert sum(1 for r in linked.coder.requests if r.token == BOB_TOKEN) == refused, "no retry with it"


async def test_relinking_heals_a_broken_link(linked: World) -> None:
    """After a revoked token, linking a new one lets the person start chats again."""
    await link(linked, linked.slack.bob, BOB_TOKEN)
    linked.coder.revoke_token(BOB_TOKEN)
    root = await linked.mention("fix it", user=linked.slack.bob)
    await linked.until(lambda: whispered(linked, linked.slack.bob, "Coder refused your linked token"))
    assert linked.chat_of(root) is None
    linked.coder.add_token("tok-bob-second-0123456789", "bob")
    await link(linked, linked.slack.bob, "tok-bob-second-0123456789")
    again = await linked.mention("fix it again", user=linked.slack.bob)
    await linked.until_idle_and_shown(again)


async def test_a_token_read_under_an_old_key_is_stored_again_under_the_newest(linked: World) -> None:
    """With a new key put first, bob's next chat runs with his token and leaves it stored under the
    new key, which alone opens it: the old key can be retired."""
    await link(linked, linked.slack.bob, BOB_TOKEN)
    new = Fernet.generate_key().decode()
    await linked.stop_bridge()
    await linked.start_bridge(identity_mode="linked", encryption_key=SecretStr(f"{new},{KEY}"))
    root = await linked.mention("fix the login bug", user=linked.slack.bob)
    await linked.until_idle_and_shown(root)
    assert linked.chat_of(root).owner_id == linked.coder.users["bob"].id
    assert opened_with(new, linked, await user_link(linked, linked.slack.bob)) == Opened(BOB_TOKEN)


async def test_a_token_moved_to_another_persons_row_is_refused(linked: World) -> None:
    """Bob's stored token copied into alice's row (by someone with database access) does not let
    alice act as bob: she is told to link, her row is marked broken, Coder never sees bob's token."""
    await link(linked, linked.slack.bob, BOB_TOKEN)
    bobs = await user_link(linked, linked.slack.bob)
    assert bobs is not None
    assert linked.bridge is not None
    async with linked.bridge.db.unit() as session:
        await repo.save_user_link(
            session,
            team_id=linked.slack.team_id,
            slack_user_id=linked.slack.alice,
            coder_user_id=bobs.coder_user_id,
            coder_username=bobs.coder_username,
            token_ciphertext=bobs.token_ciphertext,
        )
    used = sum(1 for r in linked.coder.requests if r.token == BOB_TOKEN)
    root = await linked.mention("fix it", user=linked.slack.alice)
    await linked.until(lambda: whispered(linked, linked.slack.alice, "/coder link"))
    assert linked.chat_of(root) is None
    assert linked.coder.chats == {}
    assert sum(1 for r in linked.coder.requests if r.token == BOB_TOKEN) == used
    alices = await user_link(linked, linked.slack.alice)
    assert alices is not None
    assert alices.broken


async def test_unlink_forgets_the_token(linked: World) -> None:
    """`/coder unlink` deletes the stored token; the next mention is told how to link."""
    await link(linked, linked.slack.bob, BOB_TOKEN)
    status, body = await linked.slack.slash_command(
        linked.slack.bob, linked.slack.general, "/coder", "unlink"
    )
    assert status == 200
    assert "unlinked" in body
    assert await user_link(linked, linked.slack.bob) is None
    await linked.mention("fix it", user=linked.slack.bob)
    await linked.until(lambda: whispered(linked, linked.slack.bob, "/coder link"))
    assert linked.coder.chats == {}


async def test_shared_mode_has_nothing_to_link(world: World) -> None:
    """In shared mode `/coder link` explains that chats use the bridge's token; no modal opens."""
    status, body = await world.slack.slash_command(world.slack.alice, world.slack.general, "/coder", "link")
    assert status == 200
    assert "nothing to link" in body
    assert world.slack.modal(world.slack.alice) is None
    assert world.slack.ephemerals(world.slack.alice)


async def test_help_lists_the_subcommands(world: World) -> None:
    """`/coder`, `/coder help` or an unknown subcommand answer privately with the list of subcommands."""
    for text in ("", "help", "frobnicate"):
        status, body = await world.slack.slash_command(world.slack.alice, world.slack.general, "/coder", text)
        assert status == 200
        assert "/coder link" in body
        assert "/coder unlink" in body
    assert "frobnicate" in body


async def test_link_works_over_socket_mode(linked: World) -> None:
    """Over Socket Mode the command's answer and the modal's field errors travel in the acks."""
    await linked.stop_bridge()
    await linked.start_bridge(
        identity_mode="linked",
        encryption_key=SecretStr(KEY),
        slack_app_token=SecretStr(linked.slack.app_token),
    )
    linked.slack.event_url = None
    await linked.until(lambda: linked.slack.socket_connections == 1)
    await link(linked, linked.slack.bob, "tok-wrong-0123456789")
    assert "Coder refused this token" in linked.slack.view_errors(linked.slack.bob)["token"]
    await linked.slack.submit_view(linked.slack.bob, {"token": {"token": BOB_TOKEN}})
    modal = linked.slack.modal(linked.slack.bob)
    assert modal is not None
    assert "Linked to Coder user *bob*" in str(modal["blocks"])
    assert {d.transport for d in linked.slack.deliveries} == {"socket_mode"}


async def test_link_attempts_are_throttled_per_person_across_restarts(linked: World) -> None:
    """Past BRIDGE_LINK_ATTEMPTS token checks in the window a person is told when to try again and
    Coder is not asked, also after a restart; other people are not held up."""
    settings = {"identity_mode": "linked", "encryption_key": SecretStr(KEY), "link_attempts": 2}
    await linked.stop_bridge()
    await linked.start_bridge(**settings)
    bob = linked.slack.bob
    for guess in ("tok-guess-one-0123456789", "tok-guess-two-0123456789"):
        await link(linked, bob, guess)
        assert "Coder refused this token" in linked.slack.view_errors(bob)["token"]
    await linked.stop_bridge()
    await linked.start_bridge(**settings)
    await link(linked, bob, BOB_TOKEN)
    assert (
        linked.slack.view_errors(bob)["token"] == "Too many link attempts: you can try again in 15 minutes."
    )
    assert not any(r.token == BOB_TOKEN for r in linked.coder.requests), "the token was not checked"
    assert await user_link(linked, bob) is None
    await link(linked, linked.slack.alice, CODER_TOKEN)
    assert await user_link(linked, linked.slack.alice) is not None


async def test_a_failed_claim_does_not_lend_its_authors_token_to_the_chat_started_after_it(
    linked: World,
) -> None:
    """Bob's mention without a task fails; the chat Alice then starts in the thread runs, and is
    followed, with Alice's token only."""
    slack = linked.slack
    await link(linked, slack.bob, BOB_TOKEN)
    await link(linked, slack.alice, CODER_TOKEN)
    root = await slack.user_says(slack.alice, slack.general, "the login page is slow")
    await linked.reply(root, f"<@{slack.bot_user_id}>", user=slack.bob)
    await linked.until(lambda: any("Tell me what to do" in t for t in linked.bot_texts(root)))
    await linked.reply(root, f"<@{slack.bot_user_id}> profile it")
    await linked.until_idle_and_shown(root)
    chat = linked.chat_of(root)
    assert chat.owner_id == linked.coder.users["alice"].id
    assert {r.token for r in linked.coder.requests if chat.id in r.path} == {CODER_TOKEN}
