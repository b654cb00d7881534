"""`/coder new`, `list`, `status`, `archive` and `help` end to end, including the refusals."""

from __future__ import annotations

import json

from bridge.sim.coder_agent import Text
from tests.integration.conftest import World, user_texts


def _answer(body: str) -> str:
    return str(json.loads(body)["text"]) if body.strip() else ""


def _whispered(world: World, user: str, needle: str) -> bool:
    return any(needle in (e.markdown_text or e.text) for e in world.slack.ephemerals(user))


async def _coder(world: World, text: str, user: str | None = None) -> str:
    """Run `/coder text` in #general; the answer, wherever it came (ack or response_url)."""
    user = user or world.slack.alice
    before = len(world.slack.ephemerals(user))
    response = await world.slack.slash_command(user, world.slack.general, "/coder", text)
    assert response.status == 200
    answer = _answer(response.body)
    if answer.startswith("⏳"):
        await world.until(lambda: len(world.slack.ephemerals(user)) > before + 1)
        last = world.slack.ephemerals(user)[-1]
        return last.markdown_text or last.text
    return answer


async def test_new_starts_a_chat_in_a_new_thread(world: World) -> None:
    """`/coder new <task>` posts the task as the bot and ties that thread to a new chat."""
    world.coder.agent = lambda prompt: [Text(f"Echo: {prompt}")]
    answer = await _coder(world, "new fix the login bug")
    assert "Starting a Coder chat" in answer
    await world.until(lambda: any(m.bot_id for m in world.slack.history(world.slack.general)))
    root = next(m.ts for m in world.slack.history(world.slack.general) if m.bot_id)
    await world.until_idle_and_shown(root)
    assert user_texts(world.chat_of(root)) == ["fix the login bug"]
    assert "Echo: fix the login bug" in world.bot_texts(root)
    await world.reply(root, "and the logout one")
    await world.until(lambda: "Echo: and the logout one" in world.bot_texts(root))


async def test_new_without_a_task_or_with_a_bad_option_starts_nothing(world: World) -> None:
    """No task, or an unknown option: a private answer and no chat, no thread."""
    assert "Tell me what to do" in await _coder(world, "new")
    assert "`colour=` is not an option" in await _coder(world, "new colour=red fix it")
    if world.capabilities.options:
        assert "no model `gpt-9`" in await _coder(world, "new model=gpt-9 fix it")
    assert not world.coder.chats
    assert not [m for m in world.slack.history(world.slack.general) if m.bot_id]


async def test_list_shows_the_callers_chats_or_says_there_are_none(world: World) -> None:
    """`list` with no chats says so; then it shows the caller's chats with status and link."""
    assert "no Coder chats started from Slack" in await _coder(world, "list")
    world.coder.agent = lambda prompt: [Text("done")]
    root = await world.mention("tidy the readme")
    await world.until_idle_and_shown(root)
    chat = world.chat_of(root)
    listing = await _coder(world, "list")
    assert chat.id in listing
    assert "waiting" in listing
    assert "no Coder chats" in await _coder(world, "list", user=world.slack.bob), "bob sees only his own"


async def test_list_keeps_to_the_callers_chats_when_coder_ignores_label_filters(world: World) -> None:
    """An early Coder that lists every chat whatever the label filter: `list` still shows only the
    chats whose own labels name the caller."""
    world.coder.agent = lambda prompt: [Text("done")]
    root = await world.mention("tidy the readme")
    await world.until_idle_and_shown(root)
    world.coder.ignore_label_filters = True
    assert world.chat_of(root).id in await _coder(world, "list")
    assert "no Coder chats" in await _coder(world, "list", user=world.slack.bob)


async def test_status_of_one_chat_or_the_latest(world: World) -> None:
    """`status` shows the latest chats; with a link, that chat; a stranger's id is refused."""
    world.coder.agent = lambda prompt: [Text("done")]
    root = await world.mention("tidy the readme")
    await world.until_idle_and_shown(root)
    chat = world.chat_of(root)
    assert chat.id in await _coder(world, "status")
    assert chat.id in await _coder(world, f"status {world.bridge.backend.chat_url(chat.id)}")  # type: ignore[union-attr]
    assert "not one of your chats" in await _coder(world, f"status {chat.id}", user=world.slack.bob)
    assert "Give a chat id or link" in await _coder(world, "status yesterday")


async def test_archive_by_link_and_refused_for_someone_else(world: World) -> None:
    """`archive <link>` archives the caller's chat (said in its thread); bob may not archive alice's."""
    world.coder.agent = lambda prompt: [Text("done")]
    root = await world.mention("tidy the readme")
    await world.until_idle_and_shown(root)
    chat = world.chat_of(root)
    refused = await _coder(world, f"archive {chat.id}", user=world.slack.bob)
    assert "Only <@" in refused
    assert not chat.archived
    assert "Which chat?" in await _coder(world, "archive")
    answer = await _coder(world, f"archive {world.bridge.backend.chat_url(chat.id)}")  # type: ignore[union-attr]
    if world.capabilities.archive == "refuse":
        assert "Couldn't archive" in answer
        return
    assert "Archived by" in answer
    await world.until(lambda: chat.archived)
    await world.until(lambda: any("Archived by" in t for t in world.bot_texts(root)))


async def test_help_lists_every_subcommand(world: World) -> None:
    """`help` (and an unknown subcommand) list new, list, status, archive, link, unlink and help."""
    for text in ("help", "frobnicate"):
        answer = await _coder(world, text)
        for name in ("new", "list", "status", "archive", "link", "unlink", "help"):
            assert f"/coder {name}" in answer
