"""What an agent asks of its person, folded from a chat's stream like the rest of its thread (pure).

Three things, each shown as one block under its tool call's key (``SlotKey.question``):

- a client tool call the chat waits on (``requires_action``): an ``ask_user_question`` shows its
  question with one button per answer, any other tool what the person can do instead; the call's
  result closes it (answered, with who answered when a person in Slack did, or Coder's cancellation:
  it stopped waiting after its timeout, or a stop cancelled it);
- a question chatd's own ``ask_user_question`` asked (plan mode) and answered itself with the
  questions: shown the same way, open until the next message, which is its answer (as in Coder's UI);
- a plan the agent proposed (``propose_plan``): only named (``take_plans``), since it is a chat file
  the caller must read.

``ThreadView`` feeds it and shows what it returns; it does no input or output.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bridge.coder.plans import PROPOSE_PLAN, plan_file
from bridge.coder.questions import (
    ANSWER_TIMEOUT_MINUTES,
    ASK_USER_QUESTION,
    TIMED_OUT,
    answers_in,
    asks,
    read_questions,
    result_text,
)
from bridge.coder.types import ClientCall, Message, Part, Question
from bridge.relay.content import Answered, Asking, ClientTool, Closing, Content, Unanswered
from bridge.relay.ports import Button
from bridge.relay.slots import SlotKey
from bridge.slack.blocks import ButtonAction

_BUTTON_TEXT = 75
"""Slack's limit on a button's text."""


def reply_key(text: str) -> str:
    """What ``Asked.answered_by`` takes for the person whose reply says ``text``: the reply that
    answers a question left open (plan mode's) names them when it arrives."""
    return f"reply:{text.strip()}"


@dataclass(frozen=True)
class Shown:
    """A block to show: its key, what it holds (``relay.content``: a question, a client tool's wait)
    and its buttons."""

    key: SlotKey
    content: Content
    buttons: tuple[Button, ...] = ()


class Asked:
    """The questions, waits and plans of one chat, as far as its stream told."""

    def __init__(self, chat_id: str) -> None:
        self._chat_id = chat_id
        self._waits: dict[str, ClientCall] = {}  # client tool calls the chat waits on, by call id
        self._answerers: dict[str, str] = {}  # who answered from Slack, by call id or reply_key
        self._arguments: dict[str, Any] = {}  # the arguments of questions asked, by call id
        self._open: dict[str, tuple[Question, ...]] = {}  # asked by chatd's own tool, not answered yet
        self._plans: dict[str, str] = {}  # plans proposed (call id -> file id), not taken yet
        self._plans_seen: set[str] = set()

    def answered_by(self, key: str, user_id: str) -> None:
        """A person in Slack answers call ``key`` (or replies, ``reply_key``)."""
        self._answerers[key] = user_id

    def waits(self, calls: Iterable[ClientCall]) -> list[Shown]:
        """The client tool calls the chat now waits on."""
        shown = []
        for call in calls:
            if not call.tool_call_id:
                continue
            self._waits[call.tool_call_id] = call
            questions = read_questions(call.args) if call.tool_name == ASK_USER_QUESTION else ()
            if questions:
                shown.append(self._question(call.tool_call_id, questions))
            else:
                shown.append(Shown(SlotKey.question(call.tool_call_id), ClientTool(call.tool_name)))
        return shown

    def part(self, part: Part) -> list[Shown]:
        """A persisted part: a question's arguments are kept, a result may close or open one (or
        propose a plan)."""
        if part.type == "tool-call" and part.tool_name == ASK_USER_QUESTION:
            self._arguments[part.tool_call_id] = part.args
        if part.type != "tool-result":
            return []
        file_id = plan_file(part.result) if part.tool_name == PROPOSE_PLAN and not part.is_error else None
        if file_id is not None and part.tool_call_id not in self._plans_seen:
            self._plans_seen.add(part.tool_call_id)
            self._plans[part.tool_call_id] = file_id
        if part.tool_call_id in self._waits:
            return [self._closed(self._waits.pop(part.tool_call_id), part)]
        return self._asked_itself(part)

    def message(self, message: Message) -> list[Shown]:
        """A new user message: the answer to the questions chatd's own tool left open."""
        shown = []
        for call_id, questions in self._open.items():
            who = self._answerers.get(call_id) or self._answerers.get(reply_key(message.text), "")
            shown.append(Shown(SlotKey.question(call_id), Asking(questions, Answered(message.text, who))))
        self._open = {}
        return shown

    def take_plans(self) -> dict[str, str]:
        """The plans proposed since the last call: tool call id -> the chat file holding each."""
        taken, self._plans = self._plans, {}
        return taken

    def _asked_itself(self, part: Part) -> list[Shown]:
        """chatd's own ``ask_user_question`` (plan mode) answered itself with the questions."""
        if part.tool_name != ASK_USER_QUESTION or part.is_error or not asks(part.result):
            return []
        questions = read_questions(self._arguments.get(part.tool_call_id))
        if not questions or part.tool_call_id in self._open:
            return []
        self._open[part.tool_call_id] = questions
        return [self._question(part.tool_call_id, questions)]

    def _question(self, call_id: str, questions: tuple[Question, ...]) -> Shown:
        """An open question, with its answers as buttons when it is a single one."""
        buttons: tuple[Button, ...] = ()
        if len(questions) == 1:
            buttons = tuple(
                Button(
                    f"{ButtonAction.QUESTION_ANSWER}:{n}",
                    option.label[:_BUTTON_TEXT],
                    f"{self._chat_id}:{call_id}:{n}",
                )
                for n, option in enumerate(questions[0].options)
            )
        return Shown(SlotKey.question(call_id), Asking(questions), buttons)

    def _closed(self, call: ClientCall, result: Part) -> Shown:
        """A waited-on call's result: an answer, or Coder's cancellation (it stopped waiting)."""
        questions = read_questions(call.args) if call.tool_name == ASK_USER_QUESTION else ()
        closing: Closing
        if result.is_error:
            reason = result_text(result.result)
            closing = Unanswered(reason, TIMED_OUT in reason.lower(), ANSWER_TIMEOUT_MINUTES)
        else:
            closing = Answered(answers_in(result.result), self._answerers.get(call.tool_call_id, ""))
        key = SlotKey.question(call.tool_call_id)
        if questions:
            return Shown(key, Asking(questions, closing))
        return Shown(key, ClientTool(call.tool_name, closing))
