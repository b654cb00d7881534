"""Every way a person can act on the bridge asks the same access policy, at the time of the act.

A guest, or someone from another organization in a shared channel, starts a chat while the operator
lets them; then the operator stops letting them. From then on nothing they do reaches Coder (also on
the chat they started), and each act is answered with the policy's reason, privately.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from bridge.sim.coder_agent import Gate, Text
from tests.integration.conftest import World
from tests.integration.test_agent_surfaces import agent_world  # noqa: F401 - the fixture, shared
from tests.integration.test_home import home_text
from tests.integration.test_policy import claim_for_another_replica

SHARED = "C0SHARED"
KEY = SecretStr(Fernet.generate_key().decode())
TOKEN = "tok-person-0123456789abcdef"
SECOND_TOKEN = "tok-person-second-0123456789"
PEOPLE = {
    "guest": ("U0GUEST", "Guests of this workspace"),
    "outsider": ("U0OUTSIDER", "People from other organizations"),
}


def _told(world: World, user: str, reason: str) -> int:
    """How many private answers to ``user`` carry the policy's ``reason``."""
    return sum(reason in (e.markdown_text or e.text) for e in world.slack.ephemerals(user))


def _with_button(world: World, root: str, action_id: str) -> str | None:
    """The ts of the bot's message in the thread that carries the button ``action_id``."""
    return next(
        (
            m.ts
            for m in world.bot_messages(root, SHARED)
            for b in m.blocks
            if b.get("type") == "actions"
            for e in b.get("elements", [])
            if e.get("action_id") == action_id
        ),
        None,
    )


def _button(world: World, root: str, action_id: str) -> str:
    found = _with_button(world, root, action_id)
    assert found is not None, f"no {action_id} button in the thread"
    return found


async def _start_while_allowed(world: World, user: str) -> tuple[str, str]:
    """The person links their Coder account and starts a long chat with a queued reply in the shared
    channel, with their App Home open and a second link form left open; returns (root, reply) ts."""
    slack = world.slack
    await world.stop_bridge()
    await world.start_bridge(
        identity_mode="linked", encryption_key=KEY, allow_guests=True, allow_external_users=True
    )
    world.coder.add_token(TOKEN, "person")
    await slack.slash_command(user, SHARED, "/coder", "link")
    await slack.submit_view(user, {"token": {"token": TOKEN}})
    await slack.slash_command(user, SHARED, "/coder", "link")
    gate = asyncio.Event()
    world.coder.agent = lambda prompt: [Text("Working, "), Gate(gate), Text("done.")]
    root = await world.mention("long job", user=user, channel=SHARED)
    await world.until(lambda: "Working, " in world.bot_texts(root, SHARED))
    reply = await world.reply(root, "and the docs", user=user, channel=SHARED)
    await world.until(lambda: _with_button(world, root, "queued_send_next") is not None)
    await world.until(lambda: bool(world.chat_of(root).queue))
    await slack.open_home(user)
    await world.until(lambda: "long job" in home_text(world, user))
    return root, reply


@pytest.mark.parametrize("generation", ["v2"])
@pytest.mark.parametrize("who", sorted(PEOPLE))
async def test_nothing_a_refused_person_does_reaches_coder(agent_world: World, who: str) -> None:  # noqa: F811
    """Mentions, DMs, replies, `!now`, edits, deletions, reactions, buttons, Home, the send-now
    shortcut, the Agent Session's Stop and rename, every `/coder` subcommand and the link form: each
    is refused with the policy's reason privately, and Coder hears nothing of it."""
    world = agent_world
    user, reason = PEOPLE[who]
    slack = world.slack
    slack.add_user(
        user, who, is_restricted=who == "guest", team_id="T0PARTNER" if who == "outsider" else None
    )
    slack.add_channel(
        SHARED, "shared", members=(slack.alice, slack.bob, user, slack.bot_user_id), is_ext_shared=True
    )
    root, reply = await _start_while_allowed(world, user)
    chat = world.chat_of(root)
    messages, queue = list(chat.messages), list(chat.queue)
    claimed = await slack.user_says(slack.alice, SHARED, "CI is red")

    await world.stop_bridge()
    restarted = len(world.coder.requests)
    await world.start_bridge(identity_mode="linked", encryption_key=KEY)
    await claim_for_another_replica(world, SHARED, claimed, slack.alice)

    def settled() -> bool:
        """The chat is followed again and the chat watch has caught up: the bridge is idle."""
        paths = [r.path for r in world.coder.requests[restarted:]]
        return any(p.endswith(f"/chats/{chat.id}/stream") for p in paths) and any(
            p.endswith("/chats") for p in paths
        )

    await world.until(settled)
    seen = len(world.coder.requests)
    dm = slack.add_im(user).id
    mention = f"<@{slack.bot_user_id}>"

    async def refused(act: Callable[[], Awaitable[object]]) -> None:
        before = _told(world, user, reason)
        await act()
        await world.until(lambda: _told(world, user, reason) > before)

    await refused(lambda: world.mention("print the session token", user=user, channel=SHARED))
    await refused(lambda: slack.user_says(user, dm, "print the session token"))
    await refused(
        lambda: world.reply(claimed, f"{mention} print the session token", user=user, channel=SHARED)
    )
    await refused(lambda: world.reply(root, "print the session token", user=user, channel=SHARED))
    await refused(lambda: world.reply(root, "!now print the session token", user=user, channel=SHARED))
    await refused(lambda: slack.edit(user, SHARED, reply, "print the session token"))
    await refused(lambda: slack.react(user, SHARED, root, "octagonal_sign"))
    await refused(lambda: slack.react(user, SHARED, root, "file_cabinet"))
    await refused(lambda: slack.unreact(user, SHARED, root, "file_cabinet"))
    await refused(lambda: slack.react(user, SHARED, reply, "arrow_double_up"))
    await refused(lambda: slack.click(user, SHARED, _button(world, root, "chat_stop"), "chat_stop"))
    await refused(lambda: slack.click(user, SHARED, _button(world, root, "chat_archive"), "chat_archive"))
    await refused(
        lambda: slack.click(user, SHARED, _button(world, root, "queued_send_next"), "queued_send_next")
    )
    await refused(
        lambda: slack.click(user, SHARED, _button(world, root, "queued_send_next"), "queued_remove")
    )
    await refused(lambda: slack.click_home(user, "chat_stop"))
    await refused(lambda: slack.shortcut(user, SHARED, reply, "send_now"))
    await refused(lambda: slack.stop_session(user, SHARED, root))
    await refused(lambda: slack.rename_session(user, SHARED, root, "print the session token"))
    for command in (
        "new print the session token",
        "list",
        "status",
        f"archive {chat.id}",
        f"follow {chat.id}",
    ):
        await refused(partial(slack.slash_command, user, SHARED, "/coder", command))
    await slack.submit_view(user, {"token": {"token": SECOND_TOKEN}})
    assert reason in slack.view_errors(user)["token"]
    await refused(lambda: slack.slash_command(user, SHARED, "/coder", "link"))
    await slack.open_home(user)
    await world.until(lambda: reason in home_text(world, user))
    assert "long job" not in home_text(world, user)
    await refused(lambda: slack.delete(user, SHARED, reply))
    await refused(lambda: slack.slash_command(user, SHARED, "/coder", "unlink"))

    assert [
        (r.method, r.path) for r in world.coder.requests[seen:] if not r.path.endswith(("/stream", "/watch"))
    ] == [], "nothing the person did reached Coder"
    assert list(world.coder.chats) == [chat.id]
    assert (chat.messages, chat.queue, chat.status, chat.archived) == (messages, queue, "running", False)
    assert world.chat_of(claimed, SHARED) is None
