"""End to end: an agent that stops to wait for its person (G2's ``requires_action``), and the reply
that lets it go on."""

from __future__ import annotations

import asyncio

from bridge.sim import scenarios
from bridge.sim.coder_agent import ClientToolCall, Gate, Step, Text
from bridge.slack.blocks import is_outcome, render_unqueued
from tests.integration.conftest import World, user_texts

ASK = "fix the login bug, but ask me first"
WAITING = "✋ waiting for you"
WAITING_CARD = "✋ Waiting for you · 1 tool"


def reactions(world: World, ts: str) -> set[str]:
    """The bot's reactions on a message of the general channel."""
    message = world.slack.message(world.slack.general, ts)
    assert message is not None
    return {name for name, users in message.reactions.items() if world.slack.bot_user_id in users}


def outcomes(world: World, root: str) -> list[str]:
    """The thread's end-of-work notices, in order."""
    return [t for t in world.bot_texts(root) if is_outcome(t)]


def session_status(world: World, root: str) -> str | None:
    session = world.slack.agent_sessions.get((world.slack.general, root))
    return getattr(session, "status", None)


async def _waiting(world: World, gate: asyncio.Event) -> str:
    """A thread whose agent asked its person a question and now waits for the answer; once the wait
    is over the agent goes on at ``gate``. Other prompts are echoed."""
    world.require("waits_for_user")

    def script(prompt: str) -> list[Step]:
        if prompt != ASK:
            return scenarios.echo(prompt)
        return [
            Text("Before I change anything, I need one answer from you."),
            ClientToolCall("ask_user_question", scenarios.ASK_ARGS),
            Gate(gate),
            Text("Thanks, I have what I need."),
        ]

    world.coder.agent = script
    root = await world.mention(ASK)
    await world.until(lambda: world.chat_of(root) is not None)
    chat = world.chat_of(root)
    await world.until(lambda: chat.status == "requires_action" and len(outcomes(world, root)) == 1)
    return root


async def test_waiting_agent_is_shown_and_a_reply_lets_it_go_on(world: World) -> None:
    """The thread says the agent waits for its person (status line, a mention, ✋ on the first message,
    the Agent Session suspended); a reply in the thread lets the agent go on, and the thread ends as
    any other: every reply shown once, the reply answered, the person told it is done."""
    gate = asyncio.Event()
    root = await _waiting(world, gate)
    alice = world.slack.alice
    assert outcomes(world, root) == [f"<@{alice}> ✋ The agent is waiting for you (`ask_user_question`)."]
    await world.until(lambda: WAITING in world.bot_texts(root)[0])
    await world.until(lambda: reactions(world, root) == {"raised_hand"})
    await world.until(lambda: session_status(world, root) == "suspended")
    # Compact: the card also keeps what the agent wrote before it asked.
    asked = "\n> Before I change anything, I need one answer from you." if world.style == "compact" else ""
    card = f"{WAITING_CARD}\n- • ask_user_question `Database`{asked}"
    await world.until(lambda: world.cards(root)[:1] == [card])
    done_marks = [
        c
        for c in world.slack.calls_to("reactions.add")
        if c.params.get("timestamp") == root and c.params.get("name") == "white_check_mark"
    ]
    assert not done_marks, "a turn that waits is not done"
    header = world.bot_messages(root)[0]

    reply = await world.reply(root, "Postgres")
    chat = world.chat_of(root)
    await world.until(lambda: chat.status == "running" and "⚙️ working" in header.visible_text)
    await world.until(lambda: session_status(world, root) == "processing")
    await world.until(lambda: reactions(world, root) == {"eyes"})
    gate.set()
    await world.until_idle_and_shown(root, turns=2)
    assert user_texts(chat) == [ASK, "Postgres"]
    sends = [r for r in world.coder.requests if r.method == "POST" and r.path.endswith("/messages")]
    assert [r.json.get("busy_behavior") for r in sends] == ["interrupt"], "the reply ends the wait"
    # The reply waited in Coder's queue while the agent wrapped up; its notice says the agent took it.
    taken = render_unqueued(taken=True)
    await world.until(lambda: taken in world.bot_texts(root))
    assert [t for t in world.replies(root) if t != taken] == world.shown_replies(chat)
    assert world.shown_replies(chat)[-2:] == ["Thanks, I have what I need.", "Echo: Postgres"]
    await world.until(lambda: len(outcomes(world, root)) == 2)
    assert outcomes(world, root)[1] == f"<@{alice}> ✅ The agent is done."
    await world.until(lambda: WAITING not in world.bot_texts(root)[0])
    cancelled = "✅ Done · 1 tool\n- ✗ ask_user_question `Database`"  # the reply cancelled the question
    assert world.cards(root) == [cancelled]
    await world.until(lambda: reactions(world, root) == {"white_check_mark"})
    await world.until(lambda: reactions(world, reply) == {"white_check_mark"})
    session = world.slack.agent_sessions[(world.slack.general, root)]
    await world.until(lambda: session.status == "active")
    statuses = [s for i, s in enumerate(session.history) if i == 0 or session.history[i - 1] != s]
    assert statuses[-3:] == ["suspended", "processing", "active"]


async def test_wait_survives_a_restart_without_repeating_itself(world: World) -> None:
    """A bridge restarted while the agent waits follows the wait again without a second mention;
    the reply after the restart lets the agent go on as before."""
    gate = asyncio.Event()
    root = await _waiting(world, gate)
    await world.until(lambda: WAITING in world.bot_texts(root)[0])
    await world.stop_bridge()
    await world.start_bridge()
    chat = world.chat_of(root)
    await world.until(lambda: world.coder.active_streams(chat.id) == 1)  # the wait is followed again
    reply = await world.reply(root, "SQLite")
    await world.until(lambda: any(t.startswith("📥 Queued") for t in world.bot_texts(root)))
    gate.set()
    await world.until_idle_and_shown(root, turns=2)
    taken = render_unqueued(taken=True)
    await world.until(lambda: taken in world.bot_texts(root))
    assert [t for t in world.replies(root) if t != taken] == world.shown_replies(chat)
    assert world.shown_replies(chat)[-2:] == ["Thanks, I have what I need.", "Echo: SQLite"]
    alice = world.slack.alice
    await world.until(lambda: len(outcomes(world, root)) == 2)
    assert outcomes(world, root) == [
        f"<@{alice}> ✋ The agent is waiting for you (`ask_user_question`).",
        f"<@{alice}> ✅ The agent is done.",
    ]
    await world.until(lambda: reactions(world, reply) == {"white_check_mark"})
    await world.until(lambda: reactions(world, root) == {"white_check_mark"})


async def test_stop_while_waiting_cancels_the_wait(world: World) -> None:
    """🛑 while the agent waits: Coder cancels what it waited on, the agent wraps up, and the thread
    says it stopped as asked (❌ on the turn's message, as for any stopped turn)."""
    gate = asyncio.Event()
    gate.set()
    root = await _waiting(world, gate)
    await world.until(lambda: reactions(world, root) == {"raised_hand"})
    await world.slack.react(world.slack.alice, world.slack.general, root, "octagonal_sign")
    chat = world.chat_of(root)
    await world.until_idle_and_shown(root)
    assert user_texts(chat) == [ASK]
    await world.until(lambda: any("Stopped the agent" in t for t in world.bot_texts(root)))
    alice = world.slack.alice
    await world.until(lambda: len(outcomes(world, root)) == 2)
    assert outcomes(world, root)[1] == f"<@{alice}> 🛑 The agent stopped as asked."
    await world.until(lambda: reactions(world, root) == {"x"})
