"""End to end: the chat watch keeps threads current between turns (PR summary, title, UI follow-ups)."""

from __future__ import annotations

import asyncio
from typing import Any

from bridge.sim.coder_agent import Gate, Step, Text
from tests.integration.conftest import World

PR_URL = "https://github.com/acme/app/pull/7"
DIFF = (
    "diff --git a/src/auth.py b/src/auth.py\n--- a/src/auth.py\n+++ b/src/auth.py\n"
    "@@ -1,2 +1,3 @@\n keep\n-old\n+new\n+added\n"
)


def pull_request(state: str, *, draft: bool = False) -> dict[str, Any]:
    """A ChatDiffStatus of an open (or draft, merged, closed) pull request."""
    return {
        "url": PR_URL,
        "pull_request_state": state,
        "pull_request_title": "Fix the login bug",
        "pull_request_draft": draft,
        "additions": 2,
        "deletions": 1,
        "changed_files": 1,
    }


CONTENTS = {"branch": "fix-login", "pull_request_url": PR_URL, "diff": DIFF}


def summary_texts(world: World, root: str) -> list[str]:
    return [m.visible_text for m in world.diff_summaries(root)]


async def finished_thread(world: World, text: str = "fix the login bug") -> tuple[str, Any]:
    """A thread whose chat finished its turn, with the bridge's watch connected."""
    world.coder.agent = lambda prompt: [Text(f"Echo: {prompt}")]
    root = await world.mention(text)
    await world.until_idle_and_shown(root)
    await world.until(lambda: world.coder.active_watches() == 1)
    return root, world.chat_of(root)


async def test_pull_request_opened_during_a_turn_gets_one_summary(world: World) -> None:
    """A PR opened while the agent works is summarized once: title, link, state, counts, files."""
    world.require("watch")
    gate = asyncio.Event()

    def script(prompt: str) -> list[Step]:
        return [Text("Opening a PR."), Gate(gate), Text("PR is up.")]

    world.coder.agent = script
    root = await world.mention("fix the login bug")
    await world.until(lambda: "Opening a PR." in world.bot_texts(root))
    chat = world.chat_of(root)
    world.coder.set_diff(chat.id, pull_request("open"), CONTENTS)
    await world.until(lambda: any("🟢 open" in t for t in summary_texts(world, root)))
    gate.set()
    await world.until_idle_and_shown(root)
    await world.until(lambda: world.bot_texts(root)[-1].startswith(f"<@{world.slack.alice}>"))
    assert summary_texts(world, root) == [
        f"🔀 [Fix the login bug]({PR_URL}) · 🟢 open\n+2 / −1 · 1 file changed\n- `src/auth.py` (+2 −1)"
    ]


async def test_pull_request_moving_after_the_turn_edits_the_same_message(world: World) -> None:
    """Draft, open, then merged after the turn ended: one summary message, edited in place."""
    world.require("watch")
    root, chat = await finished_thread(world)
    world.coder.set_diff(chat.id, pull_request("open", draft=True), CONTENTS)
    await world.until(lambda: any("📝 draft" in t for t in summary_texts(world, root)))
    first = world.diff_summaries(root)[0]
    for state, shown in (("open", "🟢 open"), ("merged", "🟣 merged")):
        world.coder.set_diff(chat.id, pull_request(state), CONTENTS)
        await world.until(lambda shown=shown: any(shown in t for t in summary_texts(world, root)))
    summaries = world.diff_summaries(root)
    assert [m.ts for m in summaries] == [first.ts], "edited in place, never posted again"
    assert summaries[0].edited


async def test_title_change_shows_in_the_header(world: World) -> None:
    """When Coder renames the chat, the thread's header shows the new title."""
    world.require("watch")
    root, chat = await finished_thread(world)
    world.coder.set_title(chat.id, "Login bug: token expiry")
    await world.until(lambda: "Login bug: token expiry" in world.bot_texts(root)[0])
    assert f"/agents/{chat.id}" in world.bot_texts(root)[0]


async def test_chat_continued_in_coder_ui_reaches_the_thread(world: World) -> None:
    """A message sent in Coder's web UI while the chat is idle: the agent's answer reaches the thread."""
    world.require("watch")
    root, chat = await finished_thread(world, "first")
    world.coder.send_from_ui(chat.id, "second, from the web UI")
    await world.until_idle_and_shown(root, turns=2)
    assert world.replies(root) == ["Echo: first", "Echo: second, from the web UI"]


async def test_dropped_watch_reconnects_and_misses_nothing(world: World) -> None:
    """Changes made while the watch socket is down are picked up when it reconnects."""
    world.require("watch")
    root, chat = await finished_thread(world)
    world.coder.drop_watches()
    world.coder.set_title(chat.id, "Renamed while away")
    world.coder.set_diff(chat.id, pull_request("open"), CONTENTS)
    await world.until(lambda: "Renamed while away" in world.bot_texts(root)[0])
    await world.until(lambda: any("🟢 open" in t for t in summary_texts(world, root)))
    watches = [r for r in world.coder.requests if r.path.endswith("/chats/watch")]
    assert len(watches) == 2, "the bridge reconnected once"
    assert len(world.diff_summaries(root)) == 1


async def test_restart_catches_up_on_what_changed_while_away(world: World) -> None:
    """Changes made while the bridge was down show after its start, in the same summary message."""
    world.require("watch")
    root, chat = await finished_thread(world)
    world.coder.set_diff(chat.id, pull_request("open"), CONTENTS)
    await world.until(lambda: any("🟢 open" in t for t in summary_texts(world, root)))
    first = world.diff_summaries(root)[0]
    await world.stop_bridge()
    world.coder.set_title(chat.id, "Renamed while down")
    world.coder.set_diff(chat.id, pull_request("merged"), CONTENTS)
    await world.start_bridge()
    await world.until(lambda: "Renamed while down" in world.bot_texts(root)[0])
    await world.until(lambda: any("🟣 merged" in t for t in summary_texts(world, root)))
    assert [m.ts for m in world.diff_summaries(root)] == [first.ts]


async def test_restart_rereads_no_diff_that_did_not_change(world: World) -> None:
    """A restart re-renders only what changed: an unchanged PR is not fetched again."""
    world.require("watch")
    root, chat = await finished_thread(world)
    world.coder.set_diff(chat.id, pull_request("open"), CONTENTS)
    world.coder.set_title(chat.id, "Renamed after the PR")  # handled once the PR is fully handled
    await world.until(lambda: "Renamed after the PR" in world.bot_texts(root)[0])
    await world.until(lambda: any("🟢 open" in t for t in summary_texts(world, root)))
    await world.stop_bridge()
    before = len(world.coder.requests)
    await world.start_bridge()
    await world.until(lambda: world.coder.active_watches() == 1)
    world.coder.set_title(chat.id, "A later rename")  # handled after the start's catch-up
    await world.until(lambda: "A later rename" in world.bot_texts(root)[0])
    assert not [r for r in world.coder.requests[before:] if r.path.endswith("/diff")]
