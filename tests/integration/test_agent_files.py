"""End to end: files the agent attaches are posted into the thread with Slack's external upload,
exactly once across a restart, or linked with the reason when the bridge does not post them."""

from __future__ import annotations

from typing import Any

from bridge.db import repo
from bridge.sim.coder_agent import Attach, Step, Text
from bridge.slack.blocks import is_card
from tests.integration.conftest import World

PNG = b"\x89PNG\r\n\x1a\n" + bytes(60)


def screenshot(prompt: str) -> list[Step]:
    return [Text("Here is the screenshot."), Attach("/home/coder/shot.png", PNG, "image/png"), Text("Done.")]


def posted_files(world: World, root: str) -> list[dict[str, Any]]:
    return [file for message in world.bot_messages(root) for file in message.files]


async def unposted(world: World) -> list[str]:
    """The names of the files recorded and not yet in their thread (nor explained there)."""
    assert world.bridge is not None
    async with world.bridge.db.unit() as session:
        return [row.name for row in await repo.find_unfinished_agent_files(session)]


async def test_an_attached_file_is_posted_once_below_the_reply_that_attached_it(world: World) -> None:
    """The agent's screenshot arrives in the thread as a PNG the bot uploaded, after the reply that
    attached it, uploaded once; the 2025 API, whose agent attaches no files, has nothing to post."""
    world.require("stored_files")
    world.coder.agent = screenshot
    root = await world.mention("take a screenshot")
    await world.until_idle_and_shown(root)
    await world.until(lambda: len(posted_files(world, root)) == 1)
    [file] = posted_files(world, root)
    assert (file["name"], file["mimetype"]) == ("shot.png", "image/png")
    assert world.slack.workspace.files[file["id"]].content == PNG
    texts = [m.visible_text or "📎" for m in world.bot_messages(root)]
    # The step that attached it: its own reply (full style), or the turn's card (compact).
    step = "Here is the screenshot." if world.style == "full" else next(t for t in texts if is_card(t))
    assert texts.index("📎") > texts.index(step), "below the step that attached it"
    assert len(world.slack.calls_to("files.completeUploadExternal")) == 1


async def test_a_file_over_the_limit_is_linked_with_the_reason(world: World) -> None:
    """Past ``BRIDGE_AGENT_FILE_MAX_BYTES`` the file is not uploaded: one line names it, says why
    and links to it in Coder."""
    world.require("stored_files")
    await world.stop_bridge()
    bridge = await world.start_bridge(agent_file_max_bytes=16)
    world.coder.agent = screenshot
    root = await world.mention("take a screenshot")
    await world.until_idle_and_shown(root)
    await world.until(lambda: any(t.startswith("📎") for t in world.bot_texts(root)))
    [line] = [t for t in world.bot_texts(root) if t.startswith("📎")]
    [file_id] = [f.id for f in world.coder.files.values() if f.name == "shot.png"]
    assert bridge.backend is not None
    assert line == (
        "📎 `shot.png` is not posted here: it is 68 B, more than the 16 B this bridge posts into Slack. "
        f"[Open it in Coder]({bridge.backend.file_url(file_id)})"
    )
    assert not posted_files(world, root)
    assert not world.slack.calls_to("files.getUploadURLExternal")


async def test_a_file_slack_refuses_is_linked_with_slacks_reason(world: World) -> None:
    """An app installed without ``files:write`` cannot upload: the file is linked, the line says what
    the app lacks, and the thread goes on."""
    world.require("stored_files")
    world.slack.fail_next("files.getUploadURLExternal", error="missing_scope")
    world.coder.agent = screenshot
    root = await world.mention("take a screenshot")
    await world.until_idle_and_shown(root)
    await world.until(lambda: any(t.startswith("📎") for t in world.bot_texts(root)))
    [line] = [t for t in world.bot_texts(root) if t.startswith("📎")]
    assert "Slack refused it: the Slack app may not upload files (it needs the files:write scope)" in line
    assert not posted_files(world, root)


async def test_a_file_slack_shared_before_a_restart_is_not_posted_again(world: World) -> None:
    """The bridge stops after Slack shared the file but before it heard so: the next start asks
    Slack (files.info), finds it in the thread and uploads nothing again; a file attached later
    (posted after it, files going in their order) is uploaded as usual."""
    world.require("stored_files")
    held = world.slack.hold_answer("files.completeUploadExternal")
    world.coder.agent = screenshot
    root = await world.mention("take a screenshot")
    await world.until(lambda: len(posted_files(world, root)) == 1)
    await world.stop_bridge()
    held.set()
    await world.start_bridge()
    await world.until_idle_and_shown(root)
    world.coder.agent = lambda prompt: [Attach("/home/coder/log.txt", b"all green\n", "text/plain")]
    await world.reply(root, "and the log")
    await world.until(lambda: len(posted_files(world, root)) == 2)
    assert [f["name"] for f in posted_files(world, root)] == ["shot.png", "log.txt"]
    assert len(world.slack.calls_to("files.getUploadURLExternal")) == 2
    assert world.slack.calls_to("files.info"), "asked Slack whether the first upload had landed"
    assert "shot.png" not in await unposted(world), "settled before the next file went"
