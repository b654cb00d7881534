"""The App Home tab end to end: a person's chats with status, PR state, links and buttons, kept live."""

from __future__ import annotations

import asyncio
from typing import Any

from bridge.sim.coder_agent import Gate, Text
from tests.integration.conftest import World


def _home(world: World, user: str) -> dict[str, Any]:
    return world.slack.home_view(user) or {"blocks": []}


def home_text(world: World, user: str) -> str:
    """Every text of the person's Home view, joined."""
    texts = [b["text"]["text"] for b in _home(world, user)["blocks"] if isinstance(b.get("text"), dict)]
    texts += [e["text"] for b in _home(world, user)["blocks"] for e in b.get("elements", []) if "text" in e]
    return "\n".join(str(t) for t in texts)


def home_buttons(world: World, user: str) -> list[str]:
    """The action ids of the buttons on the person's Home view, in order."""
    return [
        e["action_id"] for b in _home(world, user)["blocks"] if b["type"] == "actions" for e in b["elements"]
    ]


async def _busy_chat(world: World, text: str = "long job") -> tuple[str, asyncio.Event]:
    gate = asyncio.Event()
    world.coder.agent = lambda prompt: [Text("Working, "), Gate(gate), Text("done.")]
    root = await world.mention(text)
    await world.until(lambda: "Working, " in world.bot_texts(root))
    return root, gate


async def test_home_lists_the_chats_and_follows_them_live(world: World) -> None:
    """Opening Home shows the person's chat (title, status, links, Stop / Archive / Open in Coder);
    when the turn ends, the watch brings the new status without the tab being opened again."""
    world.require("watch")
    root, gate = await _busy_chat(world)
    chat_id = world.chat_of(root).id
    await world.slack.open_home(world.slack.alice)
    await world.until(lambda: "chat_stop" in home_buttons(world, world.slack.alice))
    text = home_text(world, world.slack.alice)
    assert "long job" in text
    assert f"/archives/{world.slack.general}/p{root.replace('.', '')}" in text
    assert home_buttons(world, world.slack.alice) == ["chat_stop", "chat_archive", "chat_open"]
    opened = [
        e for b in _home(world, world.slack.alice)["blocks"] if b["type"] == "actions" for e in b["elements"]
    ]
    assert opened[0]["value"] == chat_id
    assert opened[-1]["url"].endswith(f"/agents/{chat_id}")
    publishes = len(world.slack.calls_to("views.publish"))
    gate.set()
    await world.until(lambda: home_buttons(world, world.slack.alice) == ["chat_archive", "chat_open"])
    assert "waiting" in home_text(world, world.slack.alice)
    assert len(world.slack.calls_to("views.publish")) - publishes <= 3, "a turn's statuses are debounced"


async def test_stop_and_archive_from_home(world: World) -> None:
    """Stop on the Home tab interrupts the agent, Archive archives the chat and the tab then offers
    Unarchive: the same controls as the reactions, answered in the thread."""
    world.require("archive", "archive")
    root, _ = await _busy_chat(world)
    await world.slack.open_home(world.slack.alice)
    await world.until(lambda: "chat_stop" in home_buttons(world, world.slack.alice))
    assert (await world.slack.click_home(world.slack.alice, "chat_stop")).status == 200
    await world.until(lambda: world.chat_of(root).status == "waiting")
    await world.until(lambda: any("Stopped the agent" in t for t in world.bot_texts(root)))
    await world.until(lambda: "chat_stop" not in home_buttons(world, world.slack.alice))
    await world.slack.click_home(world.slack.alice, "chat_archive")
    await world.until(lambda: world.chat_of(root).archived)
    await world.until(lambda: "chat_unarchive" in home_buttons(world, world.slack.alice))
    assert "archived" in home_text(world, world.slack.alice)
    await world.slack.click_home(world.slack.alice, "chat_unarchive")
    await world.until(lambda: not world.chat_of(root).archived)
    await world.until(lambda: "chat_archive" in home_buttons(world, world.slack.alice))


async def test_home_shows_only_the_persons_own_chats(world: World) -> None:
    """Someone who started no chat sees the how-to and "No chats yet", not other people's chats."""
    world.coder.agent = lambda prompt: [Text(f"Echo: {prompt}")]
    root = await world.mention("alice's task")
    await world.until_idle_and_shown(root)
    await world.slack.open_home(world.slack.bob)
    await world.until(lambda: "No chats yet" in home_text(world, world.slack.bob))
    assert "alice's task" not in home_text(world, world.slack.bob)
    assert "/coder help" in home_text(world, world.slack.bob)
    assert home_buttons(world, world.slack.bob) == []


async def test_home_shows_the_pull_request_state(world: World) -> None:
    """A chat whose changes are in a pull request shows the PR's state and link."""
    world.require("watch")
    world.coder.agent = lambda prompt: [Text(f"Echo: {prompt}")]
    root = await world.mention("open a PR")
    await world.until_idle_and_shown(root)
    await world.slack.open_home(world.slack.alice)
    await world.until(lambda: "open a PR" in home_text(world, world.slack.alice))
    world.coder.set_diff(
        world.chat_of(root).id,
        {
            "url": "https://github.com/org/repo/pull/7",
            "pull_request_state": "open",
            "pull_request_title": "Fix it",
            "pr_number": 7,
        },
    )
    await world.until(lambda: "PR #7" in home_text(world, world.slack.alice))
    assert "🟢 open" in home_text(world, world.slack.alice)
    assert "<https://github.com/org/repo/pull/7|PR #7>" in home_text(world, world.slack.alice)


async def test_home_tab_turned_off_is_reported_not_retried(world: World) -> None:
    """With the Home tab off in the app's manifest, Slack refuses the publish once; the bridge stops
    trying (the operator is told in the log) and everything else works on."""
    world.slack.home_tab_enabled = False
    await world.slack.open_home(world.slack.alice)
    await world.until(lambda: len(world.slack.calls_to("views.publish")) == 1)
    await world.slack.open_home(world.slack.alice)
    world.coder.agent = lambda prompt: [Text(f"Echo: {prompt}")]
    root = await world.mention("still works")
    await world.until_idle_and_shown(root)
    assert len(world.slack.calls_to("views.publish")) == 1
