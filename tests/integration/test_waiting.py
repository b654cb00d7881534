"""End to end: an agent that stops to wait for its person (G2's ``requires_action``): the question it
asks, answered by a button or a reply in the thread, and a client tool Slack cannot carry out."""

from __future__ import annotations

import asyncio

from bridge.sim import scenarios
from bridge.sim.coder_agent import ClientToolCall, Gate, Step, Text
from bridge.slack.blocks import QUESTION_MARK, is_outcome, render_unqueued
from tests.integration.conftest import World, user_texts

ASK = "fix the login bug, but ask me first"
WAITING = "✋ waiting for you"
WAITING_CARD = "✋ Waiting for you · 1 tool"
QUESTION = "❓ *Database* · Which database should the fix target?"
BROWSE = "fix the login page, and look at it in a browser"


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


def question(world: World, root: str) -> tuple[str, list[str]]:
    """The thread's question message: its ts and the ids of its buttons."""
    message = next(m for m in world.bot_messages(root) if m.visible_text.startswith(QUESTION_MARK))
    ids = [e["action_id"] for b in message.blocks if b.get("type") == "actions" for e in b["elements"]]
    return message.ts, ids


def question_text(world: World, root: str) -> str:
    return next(t for t in world.bot_texts(root) if t.startswith(QUESTION_MARK))


def tool_results(world: World) -> list[dict[str, object]]:
    """The bodies of the tool results the bridge submitted to Coder."""
    return [r.json for r in world.coder.requests if r.method == "POST" and r.path.endswith("/tool-results")]


async def _waiting(
    world: World, gate: asyncio.Event, prompt: str = ASK, tool: str = "ask_user_question"
) -> str:
    """A thread whose agent called a client tool (by default: asked its person a question) and now
    waits; once the wait is over the agent goes on at ``gate``. Other prompts are echoed."""
    world.require("waits_for_user")
    args = scenarios.ASK_ARGS if tool == "ask_user_question" else {"url": "http://localhost:3000/login"}

    def script(text: str) -> list[Step]:
        if text != prompt:
            return scenarios.echo(text)
        return [
            Text("Before I change anything, I need one answer from you."),
            ClientToolCall(tool, args),
            Gate(gate),
            Text("Thanks, I have what I need."),
        ]

    world.coder.agent = script
    root = await world.mention(prompt)
    await world.until(lambda: world.chat_of(root) is not None)
    chat = world.chat_of(root)
    await world.until(lambda: chat.status == "requires_action" and len(outcomes(world, root)) == 1)
    return root


async def test_a_question_is_answered_by_a_button(world: World) -> None:
    """The agent's question shows with one button per answer and says a reply answers it too; the
    thread says the agent waits (status line, a mention, ✋, the Agent Session suspended). A click
    answers it as Coder's CLI does, the agent goes on in the same turn, and the question says who
    answered what, its buttons gone."""
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
    ts, buttons = question(world, root)
    assert question_text(world, root) == (
        f"{QUESTION}\n• *Postgres* — The production database.\n• *SQLite* — The local development database.\n"
        "_Click an answer, or reply in this thread to answer in your own words._"
    )
    assert buttons == ["question_answer:0", "question_answer:1"]

    await world.slack.click(alice, world.slack.general, ts, "question_answer:1")
    chat = world.chat_of(root)
    await world.until(lambda: chat.status == "running")
    call = chat.messages[-1]["content"][0]
    assert call["tool_name"] == "ask_user_question"
    assert call["result"] == {
        "answers": [
            {
                "header": "Database",
                "question": "Which database should the fix target?",
                "answer": "SQLite",
                "option_label": "SQLite",
                "freeform": False,
            }
        ]
    }
    gate.set()
    await world.until_idle_and_shown(root)
    assert user_texts(chat) == [ASK], "the answer is the question's result, not a message"
    await world.until(lambda: question_text(world, root).endswith(f"✅ <@{alice}> answered: *SQLite*"))
    assert question(world, root)[1] == []
    assert world.replies(root) == world.shown_replies(chat)
    assert world.shown_replies(chat)[-1] == "Thanks, I have what I need."
    await world.until(lambda: len(outcomes(world, root)) == 2)
    assert outcomes(world, root)[1] == f"<@{alice}> ✅ The agent is done."
    await world.until(lambda: reactions(world, root) == {"white_check_mark"})
    assert world.cards(root) == ["✅ Done · 1 tool\n- ✓ ask_user_question `Database`"]


async def test_a_reply_answers_the_open_question_in_words(world: World) -> None:
    """A reply while the question is open is its answer, in the person's own words; a redelivery of
    that reply (Slack retries) answers nothing twice and sends nothing."""
    gate = asyncio.Event()
    gate.set()
    root = await _waiting(world, gate)
    reply = await world.reply(root, "Neither: use the staging MySQL")
    chat = world.chat_of(root)
    await world.until_idle_and_shown(root)
    assert user_texts(chat) == [ASK]
    [body] = tool_results(world)
    assert body["results"] == [
        {
            "tool_call_id": chat.messages[-2]["content"][0]["tool_call_id"],
            "output": {
                "answers": [
                    {
                        "header": "Database",
                        "question": "Which database should the fix target?",
                        "answer": "Neither: use the staging MySQL",
                        "freeform": True,
                    }
                ]
            },
            "is_error": False,
        }
    ]
    alice = world.slack.alice
    answered = f"✅ <@{alice}> answered: *Neither: use the staging MySQL*"
    await world.until(lambda: question_text(world, root).endswith(answered))
    delivery = next(d for d in world.slack.deliveries if d.payload.get("event", {}).get("ts") == reply)
    await world.slack.deliver_event(delivery.payload, retry_num=1, wrap=False)
    await world.reply(root, "thanks")
    await world.until_idle_and_shown(root, turns=2)
    assert len(tool_results(world)) == 1
    assert user_texts(chat) == [ASK, "thanks"]


async def test_only_people_who_may_follow_up_can_answer(world: World) -> None:
    """A guest's or an outsider's click is refused privately, as their reply would be, and Coder
    hears nothing; the question stays open."""
    gate = asyncio.Event()
    root = await _waiting(world, gate)
    slack = world.slack
    slack.add_user("U0GUEST", "guest", is_restricted=True)
    slack.add_user("U0OUTSIDER", "outsider", team_id="T0PARTNER")
    ts, _ = question(world, root)
    for user, reason in (("U0GUEST", "Guests of this workspace"), ("U0OUTSIDER", "other organizations")):
        await slack.click(user, slack.general, ts, "question_answer:0")
        await world.until(lambda u=user, r=reason: any(r in e.markdown_text for e in slack.ephemerals(u)))
    assert tool_results(world) == []
    assert world.chat_of(root).status == "requires_action"
    assert question(world, root)[1] == ["question_answer:0", "question_answer:1"]


async def test_a_question_nobody_answers_in_time_says_so(world: World) -> None:
    """Coder gives up on a question after its timeout (five minutes; shortened here): the question
    says so and its buttons go."""
    world.coder.action_timeout = 0.5
    gate = asyncio.Event()
    gate.set()
    root = await _waiting(world, gate)
    await world.until_idle_and_shown(root)
    expired = "⌛ _Coder stopped waiting for an answer after 5 minutes; the agent went on without one._"
    await world.until(lambda: question_text(world, root).endswith(expired))
    assert question(world, root)[1] == []
    assert tool_results(world) == []


async def test_a_client_tool_slack_cannot_run_is_named_with_what_to_do(world: World) -> None:
    """Another client tool: the thread names it and says what to do; a reply lets the agent go on
    without it (Coder cancels the call), and the line says the call was not answered."""
    gate = asyncio.Event()
    gate.set()
    root = await _waiting(world, gate, prompt=BROWSE, tool="browser")
    waits = next(t for t in world.bot_texts(root) if t.startswith("✋ The agent waits for `browser`"))
    assert "Reply in this thread to let the agent go on without it" in waits
    await world.reply(root, "skip the browser")
    chat = world.chat_of(root)
    await world.until_idle_and_shown(root, turns=2)
    assert user_texts(chat) == [BROWSE, "skip the browser"]
    assert tool_results(world) == []
    cancelled = "✖️ _Not answered: Tool execution interrupted by user message_"
    await world.until(lambda: any(t.endswith(cancelled) for t in world.bot_texts(root)))
    taken = render_unqueued(taken=True)
    await world.until(lambda: taken in world.bot_texts(root))


async def test_wait_survives_a_restart_without_repeating_itself(world: World) -> None:
    """A bridge restarted while the agent waits follows the wait again without a second mention or
    a second question; the reply after the restart answers it."""
    gate = asyncio.Event()
    root = await _waiting(world, gate)
    await world.until(lambda: WAITING in world.bot_texts(root)[0])
    await world.stop_bridge()
    await world.start_bridge()
    chat = world.chat_of(root)
    await world.until(lambda: world.coder.active_streams(chat.id) == 1)  # the wait is followed again
    await world.reply(root, "SQLite")
    await world.until(lambda: chat.status == "running")
    gate.set()
    await world.until_idle_and_shown(root)
    alice = world.slack.alice
    await world.until(lambda: len(outcomes(world, root)) == 2)
    assert outcomes(world, root) == [
        f"<@{alice}> ✋ The agent is waiting for you (`ask_user_question`).",
        f"<@{alice}> ✅ The agent is done.",
    ]
    assert len([t for t in world.bot_texts(root) if t.startswith(QUESTION_MARK)]) == 1
    await world.until(lambda: question_text(world, root).endswith("answered: *SQLite*"))
    await world.until(lambda: reactions(world, root) == {"white_check_mark"})


async def test_stop_while_waiting_cancels_the_wait(world: World) -> None:
    """🛑 while the agent waits: Coder cancels what it waited on, the agent wraps up, the question
    says it was not answered, and the thread says the agent stopped as asked."""
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
    await world.until(
        lambda: question_text(world, root).endswith("✖️ _Not answered: Tool execution interrupted by user_")
    )
