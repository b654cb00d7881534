"""How each Coder build's answers and failures read in the thread, end to end (reference 0a).

A promote Coder only accepts, an answer the bridge cannot read, a failure of each kind, warnings on
a send and the ids an edit removed: what the person reads, never a parser's text.
"""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

from bridge.sim.coder_agent import Fail, Gate, Text
from tests.integration.conftest import World

_ERROR_ID = re.compile(r"error id `([0-9a-f]{8})`")
_INTERNALS = ("validation error", "pydantic", "Traceback", "input_value")


def _rest_api(world: World) -> None:
    """Skip where Coder's answers are not REST objects: the 2025 AI-SDK API has no promote, queue
    or classified errors of its own (test_aisdk_backend covers what it does instead)."""
    if world.coder.dialect.ai_sdk:
        pytest.skip("the 2025 AI-SDK API answers none of these")


async def _queued_behind_a_busy_turn(world: World) -> tuple[str, str, asyncio.Event]:
    """A chat busy on "first" with "second" queued; the root and the queued message's ts."""
    root, gate = await world.busy_on_first()
    queued = await world.reply(root, "second")
    await world.until(lambda: any("Queued" in t for t in world.bot_texts(root)))
    return root, queued, gate


async def test_promote_coder_only_accepts_takes_the_message_from_the_queue(world: World) -> None:
    """⏫ where Coder answers 202 (newest) or the message (older): the thread says it moved, and the
    queued notice turns into "taken" once the stream shows the message, with no error line."""
    _rest_api(world)
    root, queued, gate = await _queued_behind_a_busy_turn(world)
    await world.slack.react(world.slack.alice, world.slack.general, queued, "arrow_double_up")
    await world.until(lambda: any("moved a queued message to the front" in t for t in world.bot_texts(root)))
    await world.until(lambda: "📨 The agent took this queued message." in world.bot_texts(root))
    gate.set()
    await world.until(lambda: "Echo: second" in world.bot_texts(root))
    assert not any(t.startswith("⚠️") for t in world.bot_texts(root))


async def test_unreadable_answer_is_one_plain_line_with_an_error_id(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A promote answer the bridge cannot read: the thread gets one plain line with an error id, the
    parser's text goes to the log under that id, never to the thread."""
    _rest_api(world)
    root, queued, gate = await _queued_behind_a_busy_turn(world)
    world.coder.fail_next("POST", r"/promote$", 200, "Here you go.", fields={"id": "not-a-number"})
    with caplog.at_level(logging.WARNING, logger="bridge.coder.errors"):
        await world.slack.react(world.slack.alice, world.slack.general, queued, "arrow_double_up")
        await world.until(lambda: any(_ERROR_ID.search(t) for t in world.bot_texts(root)))
    line = next(t for t in world.bot_texts(root) if _ERROR_ID.search(t))
    match = _ERROR_ID.search(line)
    assert match is not None
    assert not any(word in t for t in world.bot_texts(root) for word in _INTERNALS)
    logged = [r.getMessage() for r in caplog.records if match.group(1) in r.getMessage()]
    assert len([m for m in logged if "validation error" in m]) == 1, "the parser's text, logged once"
    gate.set()


@pytest.mark.parametrize(
    ("fail", "advice"),
    [
        (
            Fail(
                "The usage quota for Anthropic has been exceeded.",
                kind="usage_limit",
                provider="anthropic",
            ),
            "A usage limit is used up",
        ),
        (
            Fail("The OpenAI provider has been disabled.", kind="provider_disabled", provider="openai"),
            "start the task with another model (`model=NAME`)",
        ),
        (
            Fail("Authentication with Anthropic failed.", kind="auth", detail="invalid x-api-key"),
            "(invalid x-api-key)",
        ),
        (Fail("Something odd happened.", kind="solar_flare"), "Something odd happened"),
    ],
    ids=["usage-limit", "provider-disabled", "auth", "unknown-kind"],
)
async def test_a_failed_turn_says_what_to_do_by_kind(world: World, fail: Fail, advice: str) -> None:
    """A turn that fails shows Coder's message, the provider's detail and, by kind, what the person
    can do; an unknown kind shows Coder's message alone."""
    _rest_api(world)
    followed = asyncio.Event()  # fails once the stream follows: G1's last_error has no kind to show
    world.coder.agent = lambda prompt: [Text("Looking."), Gate(followed), fail]
    root = await world.mention("go")
    await world.until(lambda: world.coder.active_streams() == 1)
    followed.set()
    stopped = f"<@{world.slack.alice}> ❌ The agent stopped with an error"
    await world.until(lambda: any(t.startswith(stopped) for t in world.bot_texts(root)))
    outcome = next(t for t in world.bot_texts(root) if t.startswith(stopped))
    assert fail.message.rstrip(".") in outcome
    assert advice in outcome
    if fail.kind == "solar_flare":
        assert "Coder administrator" not in outcome


async def test_a_refused_send_says_what_to_do_by_kind(world: World) -> None:
    """A follow-up Coder refuses for a spent usage limit (the older 409 body) is answered with the
    usage-limit advice, and nothing reached the agent."""
    _rest_api(world)
    world.coder.agent = lambda prompt: [Text(f"Echo: {prompt}")]
    root = await world.mention("one")
    await world.until_idle_and_shown(root)
    limit = {"spent_micros": 5230000, "limit_micros": 5000000, "resets_at": "2025-08-01T00:00:00Z"}
    world.coder.fail_next("POST", r"/messages$", 409, "Chat usage limit exceeded.", fields=limit)
    await world.reply(root, "two")
    await world.until(lambda: any("did not reach the agent" in t for t in world.bot_texts(root)))
    line = next(t for t in world.bot_texts(root) if "did not reach the agent" in t)
    assert "Chat usage limit exceeded. A usage limit is used up" in line


async def test_coder_warnings_on_a_send_are_shown_once(world: World) -> None:
    """The newest build's warnings on a send appear once in the thread, also when Slack redelivers
    the message."""
    if not world.coder.dialect.late:
        pytest.skip("only the newest builds answer a send with warnings")
    world.coder.agent = lambda prompt: [Text(f"Echo: {prompt}")]
    root = await world.mention("one")
    await world.until_idle_and_shown(root)
    world.coder.warnings = ['MCP server "jira" is unavailable.']
    await world.reply(root, "two")
    await world.until_idle_and_shown(root, turns=2)
    noted = '⚠️ Coder noted: MCP server "jira" is unavailable.'
    await world.until(lambda: noted in world.bot_texts(root))
    reply = next(d for d in world.slack.deliveries if d.payload.get("event", {}).get("text") == "two")
    await world.slack.deliver_event(reply.payload, retry_num=1, wrap=False)
    await world.reply(root, "three")
    await world.until_idle_and_shown(root, turns=3)
    assert world.bot_texts(root).count(noted) == 2, "one for each message that got the warning"


async def test_coder_warnings_on_a_new_chat_are_shown_once(world: World) -> None:
    """The newest build's warnings on the chat it creates appear once in the thread, under the header."""
    if not world.coder.dialect.late:
        pytest.skip("only the newest builds answer a create with warnings")
    world.coder.warnings = ['MCP server "jira" is unavailable.']
    root = await world.mention("one")
    await world.until_idle_and_shown(root)
    noted = '⚠️ Coder noted: MCP server "jira" is unavailable.'
    await world.until(lambda: noted in world.bot_texts(root))
    assert world.bot_texts(root).index(noted) == 1, "right under the header"
    mention = next(d for d in world.slack.deliveries if d.payload.get("event", {}).get("ts") == root)
    await world.slack.deliver_event(mention.payload, retry_num=1, wrap=False)
    await world.reply(root, "two")
    await world.until_idle_and_shown(root, turns=2)
    assert world.bot_texts(root).count(noted) == 2, "once for the chat, once for the follow-up"


async def test_an_edit_says_how_many_later_messages_coder_removed(world: World) -> None:
    """The newest edit answer names the messages it removed: the thread says how many of the chat's
    later messages went."""
    if not world.coder.dialect.late:
        pytest.skip("only the newest builds name the messages an edit removed")
    world.coder.agent = lambda prompt: [Text(f"Echo: {prompt}")]
    root = await world.mention("one")
    await world.until_idle_and_shown(root)
    two = await world.reply(root, "two")
    await world.until_idle_and_shown(root, turns=2)
    await world.reply(root, "three")
    await world.until_idle_and_shown(root, turns=3)
    await world.slack.edit(world.slack.alice, world.slack.general, two, "2")
    await world.until(lambda: any("Edited in Coder" in t for t in world.bot_texts(root)))
    note = next(t for t in world.bot_texts(root) if "Edited in Coder" in t)
    assert "Coder removed the 3 later message(s) of the chat." in note
