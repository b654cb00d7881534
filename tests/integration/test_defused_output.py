"""End to end: nothing the agent or a person writes pings a group or disguises a link through the bridge.

The Slack simulator reads what the bridge posted as Slack does (``SimMessage.notifies``): the agent's
replies, its tool calls, its failure, a chat's title and a ``/coder new`` task reach the thread, and
only the bridge's own mention of the requester notifies anyone.
"""

from __future__ import annotations

import pytest

from bridge.sim.coder_agent import Fail, Pause, Text, ToolCall
from bridge.sim.slack_state import SimMessage
from tests.integration.conftest import World

EVIL = "https://evil.example/login"
HOSTILE = (
    "Done <!channel> <!here> <!everyone> <!subteam^S0DEVS|@devs>, ask <@U0BOB>. "
    f"Review [https://github.com/coder/coder/pull/1]({EVIL}) or <{EVIL}|https://github.com/coder/coder>."
)
"""What an agent steered by an injected prompt might write."""


def _sent_texts(world: World) -> list[str]:
    """Every text the bridge sent to Slack, progress included, in any of the fields it may use."""
    methods = ("chat.postMessage", "chat.update", "chat.startStream", "chat.appendStream", "chat.stopStream")
    texts: list[str] = []
    for method in methods:
        for call in world.slack.calls_to(method):
            texts += [str(call.params.get(k) or "") for k in ("markdown_text", "text", "chunks", "blocks")]
    return texts


def _assert_nothing_disguised(world: World) -> None:
    sent = "\n".join(_sent_texts(world))
    assert f"]({EVIL})" not in sent
    assert f"<{EVIL}|" not in sent


def _notifying(world: World, root: str) -> list[tuple[str, frozenset[str]]]:
    """The thread's messages by the bridge that notify anyone, with whom."""
    messages: list[SimMessage] = world.bot_messages(root)
    return [(m.visible_text, m.notifies) for m in messages if m.notifies]


async def _until_told(world: World, root: str) -> None:
    """Wait for the requester's end-of-turn mention."""
    await world.until(lambda: any(world.slack.alice in m.notifies for m in world.bot_messages(root)))


@pytest.mark.parametrize("streaming", [False, True], ids=["edits", "native-streaming"])
async def test_agent_output_notifies_only_the_requester(world: World, streaming: bool) -> None:
    """Broadcasts, group and user mentions in replies and tool calls notify nobody, disguised links
    show their target, and the requester is still mentioned when the agent is done."""
    if streaming:
        await world.stop_bridge()
        await world.start_bridge(native_streaming=True)
    # The pause: the reply still streams once its message is posted (natively streamed, when on).
    world.coder.agent = lambda prompt: [
        Text(HOSTILE[:4]),
        Pause(0.2),
        Text(HOSTILE[4:]),
        ToolCall("execute", {"command": "echo <!channel> <@U0BOB>"}, result="ok"),
        Text(f"| who | where |\n|---|---|\n| <!here> | <{EVIL}|https://github.com> |"),
    ]
    root = await world.mention("tidy up")
    await _until_told(world, root)
    notifying = _notifying(world, root)
    assert [who for _, who in notifying] == [frozenset({world.slack.alice})]
    assert notifying[0][0].startswith(f"<@{world.slack.alice}> ✅ The agent is done")
    _assert_nothing_disguised(world)
    assert any(f"<{EVIL}>" in text for text in world.bot_texts(root)), "the real target is shown"
    assert bool(world.slack.calls_to("chat.startStream")) is streaming


async def test_a_failure_reason_and_a_title_notify_nobody(world: World) -> None:
    """A chat titled from a hostile task and an error reason with mentions: header, card, status and
    outcome quote them; only the requester is mentioned."""
    world.coder.agent = lambda prompt: [Fail("<!channel> quota gone, ask <@U0BOB>")]
    root = await world.mention("<!here> <@U0BOB> please check")
    await _until_told(world, root)
    await world.until(lambda: any(t.startswith("Started") and "❌" in t for t in world.bot_texts(root)))
    assert [who for _, who in _notifying(world, root)] == [frozenset({world.slack.alice})]
    session = world.slack.agent_sessions.get((world.slack.general, root))
    if session is not None and session.title:
        assert "<!here>" not in session.title
        assert "<@U0BOB>" not in session.title


async def test_a_coder_new_task_is_echoed_without_its_broadcast(world: World) -> None:
    """`/coder new` posts the task as the thread's root: it names the caller, notifies no group and
    disguises no link."""
    world.coder.agent = lambda prompt: [Text("ok")]
    task = f"<!channel> fix [https://github.com/coder/coder]({EVIL})"
    response = await world.slack.slash_command(
        world.slack.alice, world.slack.general, "/coder", f"new {task}"
    )
    assert response.status == 200
    await world.until(lambda: any(m.bot_id for m in world.slack.history(world.slack.general)))
    root = next(m for m in world.slack.history(world.slack.general) if m.bot_id)
    assert root.notifies == {world.slack.alice}
    assert f"<{EVIL}>" in root.visible_text
    _assert_nothing_disguised(world)
