"""End to end: a chat started in plan mode (``plan=true``, ``/coder plan``), the plan it proposes as a
checklist with Approve and Revise, and the refusal on a Coder without plan mode."""

from __future__ import annotations

import pytest

from bridge.sim import scenarios
from bridge.sim.coder_agent import ProposePlan, Step, Text, ToolCall
from bridge.slack.blocks import PLAN_MARK, QUESTION_MARK
from tests.integration.conftest import World, user_texts
from tests.integration.test_chat_commands import _coder

TASK = "fix the login bug"
PLAN = """# Fix the login bug

1. Reproduce the failing login in a test
2. Fix the session check
   - keep the old cookie name
3. Run the test suite
"""
CHECKLIST = (
    f"{PLAN_MARK}*The agent's plan*\n*Fix the login bug*\n\n☐ Reproduce the failing login in a test\n"
    "☐ Fix the session check\n    ☐ keep the old cookie name\n☐ Run the test suite"
)
ASK_TO_APPROVE = "_*Approve* to have the agent implement it, or *Revise* to tell it what to change._"


def planner(prompt: str) -> list[Step]:
    """An agent that plans a task, and implements it when told to."""
    if prompt == "Implement the plan.":
        return [Text("Implemented: the login works again.")]
    if prompt.endswith(TASK):
        return [Text("I looked around; here is my plan."), ProposePlan(PLAN)]
    return [Text(f"Revised for: {prompt}"), ProposePlan(PLAN + "4. Tell the team\n")]


def plan_message(world: World, root: str) -> tuple[str, str, list[str]]:
    """The thread's newest plan: its ts, its text and the ids of its buttons."""
    message = [m for m in world.bot_messages(root) if m.visible_text.startswith(PLAN_MARK)][-1]
    ids = [e["action_id"] for b in message.blocks if b.get("type") == "actions" for e in b["elements"]]
    return message.ts, message.visible_text, ids


def has_plan(world: World, root: str, count: int = 1) -> bool:
    return sum(m.visible_text.startswith(PLAN_MARK) for m in world.bot_messages(root)) == count


async def _planning(world: World, text: str = f"plan=true {TASK}") -> str:
    world.require("plan_mode")
    world.coder.agent = planner
    root = await world.mention(text)
    await world.until(lambda: world.chat_of(root) is not None)
    await world.until(lambda: has_plan(world, root))
    return root


async def test_a_plan_is_shown_as_a_checklist_and_approve_implements_it(world: World) -> None:
    """``plan=true`` starts the chat in plan mode (said under the header); the plan the agent proposes
    is a checklist with Approve and Revise; Approve sends what Coder's own Implement button sends and
    takes the chat out of plan mode; the agent implements it and the plan says who approved it."""
    root = await _planning(world)
    chat = world.chat_of(root)
    assert chat.plan_mode == "plan"
    creates = [r for r in world.coder.requests if r.method == "POST" and r.path.endswith("/chats")]
    assert creates[-1].json["plan_mode"] == "plan"
    assert any(t.startswith("📝 Plan mode: the agent looks around") for t in world.bot_texts(root))
    ts, text, buttons = plan_message(world, root)
    assert text == f"{CHECKLIST}\n{ASK_TO_APPROVE}"
    assert buttons == ["plan_approve", "plan_revise"]
    await world.until_idle_and_shown(root)

    await world.slack.click(world.slack.alice, world.slack.general, ts, "plan_approve")
    await world.until_idle_and_shown(root, turns=2)
    assert user_texts(chat) == [TASK, "Implement the plan."]
    sends = [r for r in world.coder.requests if r.method == "POST" and r.path.endswith("/messages")]
    assert sends[-1].json["plan_mode"] == ""
    assert chat.plan_mode == ""
    approved = f"✅ <@{world.slack.alice}> approved this plan: the agent implements it now."
    await world.until(lambda: plan_message(world, root)[1] == f"{CHECKLIST}\n{approved}")
    assert plan_message(world, root)[2] == []
    assert "Implemented: the login works again." in world.replies(root)


async def test_streamed_natively_the_plan_is_slacks_own_with_its_buttons(world: World) -> None:
    """With native streaming the plan's steps are Slack's plan and tasks, under the same buttons."""
    world.require("plan_mode")
    await world.stop_bridge()
    await world.start_bridge(native_streaming=True)
    root = await _planning(world)
    ts, _, buttons = plan_message(world, root)
    assert buttons == ["plan_approve", "plan_revise"]
    plan_update = {"type": "plan_update", "title": "The agent's plan"}
    [start] = [
        c for c in world.slack.calls_to("chat.startStream") if plan_update in c.params.get("chunks", [])
    ]
    titles = [c["title"] for c in start.params["chunks"] if c["type"] == "task_update"]
    assert titles == [
        "Reproduce the failing login in a test",
        "Fix the session check",
        "keep the old cookie name",
        "Run the test suite",
    ]
    await world.until_idle_and_shown(root)
    await world.slack.click(world.slack.alice, world.slack.general, ts, "plan_approve")
    await world.until_idle_and_shown(root, turns=2)
    assert world.chat_of(root).plan_mode == ""


async def test_revise_asks_for_words_and_the_reply_is_the_revision(world: World) -> None:
    """Revise asks the clicker for what to change; their reply goes to the agent while the chat stays
    in plan mode, and the revised plan comes with buttons of its own. A guest's or an outsider's click
    is refused privately and changes nothing."""
    root = await _planning(world)
    await world.until_idle_and_shown(root)
    ts, _, _ = plan_message(world, root)
    world.slack.add_user("U0GUEST", "guest", is_restricted=True)
    world.slack.add_user("U0OUTSIDER", "outsider", team_id="T0PARTNER")
    for user, reason, button in (
        ("U0GUEST", "Guests", "plan_approve"),
        ("U0OUTSIDER", "other organizations", "plan_revise"),
    ):
        await world.slack.click(user, world.slack.general, ts, button)
        await world.until(
            lambda u=user, r=reason: any(r in e.markdown_text for e in world.slack.ephemerals(u))
        )
    assert world.chat_of(root).plan_mode == "plan"
    assert not any(t.startswith("✏️") for t in world.bot_texts(root))
    alice = world.slack.alice
    await world.slack.click(alice, world.slack.general, ts, "plan_revise")
    await world.until(
        lambda: any(t.startswith(f"✏️ <@{alice}>, reply in this thread") for t in world.bot_texts(root))
    )
    await world.reply(root, "also tell the team")
    await world.until(lambda: has_plan(world, root, 2))
    chat = world.chat_of(root)
    await world.until_idle_and_shown(root, turns=2)
    assert user_texts(chat) == [TASK, "also tell the team"]
    assert chat.plan_mode == "plan", "a revision keeps the chat planning"
    assert plan_message(world, root)[1].endswith(f"☐ Tell the team\n{ASK_TO_APPROVE}")


@pytest.mark.parametrize("how", ["button", "reply"])
async def test_a_question_asked_while_planning_is_answered(world: World, how: str) -> None:
    """In plan mode chatd's own ``ask_user_question`` answers itself with the questions and the turn
    goes on; Slack shows the question with its buttons. A click sends the answer as Coder's UI does
    (a message: the option's label), as a reply does in words; the question then shows who answered."""
    world.require("plan_mode")
    asked = {"questions": scenarios.ASK_ARGS["questions"]}

    def script(prompt: str) -> list[Step]:
        if prompt.endswith(TASK):
            return [ToolCall("ask_user_question", scenarios.ASK_ARGS, asked), Text("Tell me, then I plan.")]
        return [Text(f"Planning for {prompt}."), ProposePlan(PLAN)]

    world.coder.agent = script
    root = await world.mention(f"plan=true {TASK}")
    await world.until_idle_and_shown(root)
    question = next(m for m in world.bot_messages(root) if m.visible_text.startswith(QUESTION_MARK))
    answer = "Postgres" if how == "button" else "MySQL, the staging one"
    if how == "button":
        await world.slack.click(world.slack.alice, world.slack.general, question.ts, "question_answer:0")
    else:
        await world.reply(root, answer)
    await world.until(lambda: has_plan(world, root))
    chat = world.chat_of(root)
    await world.until_idle_and_shown(root, turns=2)
    assert user_texts(chat) == [TASK, answer]
    answered = f"✅ <@{world.slack.alice}> answered: *{answer}*"
    shown = world.slack.message(world.slack.general, question.ts)
    assert shown is not None
    await world.until(lambda: shown.visible_text.endswith(answered))


async def test_coder_plan_command_starts_in_plan_mode(world: World) -> None:
    """``/coder plan <task>`` is ``plan=true`` before the task."""
    world.require("plan_mode")
    world.coder.agent = planner
    assert "Starting a Coder chat" in await _coder(world, f"plan {TASK}")
    await world.until(lambda: any(c.plan_mode == "plan" for c in world.coder.chats.values()))


async def test_a_coder_without_plan_mode_refuses_it_with_the_version(world: World) -> None:
    """Where the Coder generation has no plan mode, ``plan=true`` starts nothing and says which
    Coder has it."""
    world.require("plan_mode", False)
    await world.mention(f"plan=true {TASK}")
    await world.until(
        lambda: any("has no plan mode" in e.markdown_text for e in world.slack.ephemerals(world.slack.alice))
    )
    assert not world.coder.chats
