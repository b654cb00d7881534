"""The questions an agent asks its person through Coder's ``ask_user_question`` tool, and the answers.

The tool's arguments (coder/coder coderd/x/chatd/chattool/askuserquestion.go at 04cca229): one or
more questions, each a short ``header``, the ``question`` and 2–4 ``options`` (``label`` and
``description``); the model is told not to offer "Other", since a client offers free text itself.
A chat that waits in ``requires_action`` on such a call is answered the way Coder's CLI answers it
(cli chat view ``buildAskUserQuestionToolResult``): a tool result ``{"answers": [...]}``, one entry
per question with its ``header``, ``question``, ``answer``, the chosen ``option_label`` (omitted for
free text) and ``freeform``. UNCERTAIN: that the CLI puts a chosen option's label in ``answer`` too.

Arguments that do not read as questions are kept out (``read_questions`` gives none): the thread
then treats the call like any other client tool.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bridge.coder.types import Message, Question, QuestionOption, ToolResult

ASK_USER_QUESTION = "ask_user_question"
TIMED_OUT = "timed out"
"""What chatd's result for a call nobody answered in time says (chatstate ``CancelRequiresAction``:
"Tool execution timed out"), as opposed to one a person's stop cancelled."""
ANSWER_TIMEOUT_MINUTES = 5
"""chatstate ``requiresActionTimeout``: how long Coder waits for a client tool's result."""


def read_questions(args: Any) -> tuple[Question, ...]:
    """The questions of a call's arguments, as far as they read as questions (none otherwise)."""
    raw = args.get("questions") if isinstance(args, dict) else None
    if not isinstance(raw, list):
        return ()
    questions = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("question"), str):
            return ()
        raw_options = item.get("options")
        options = raw_options if isinstance(raw_options, list) else []
        offered = tuple(
            QuestionOption(label=str(o["label"]).strip(), description=str(o.get("description") or "").strip())
            for o in options
            if isinstance(o, dict) and str(o.get("label") or "").strip()
        )
        header = str(item.get("header") or "").strip()
        questions.append(Question(header=header, text=item["question"].strip(), options=offered))
    return tuple(questions)


@dataclass(frozen=True)
class Answer:
    """A person's answer to one question: an option's label, or words of their own."""

    text: str
    option: bool


def answer_result(call_id: str, questions: Sequence[Question], answers: Sequence[Answer]) -> ToolResult:
    """The tool result that answers call ``call_id``, in the shape Coder's CLI submits."""
    entries: list[dict[str, Any]] = []
    for question, answer in zip(questions, answers, strict=True):
        entry: dict[str, Any] = {"header": question.header, "question": question.text, "answer": answer.text}
        if answer.option:
            entry["option_label"] = answer.text
        entry["freeform"] = not answer.option
        entries.append(entry)
    return ToolResult(tool_call_id=call_id, output={"answers": entries})


def asks(result: Any) -> bool:
    """Whether a result is chatd's own ``ask_user_question`` answering itself with the questions (in
    plan mode; its text is the ``{"questions": [...]}`` JSON), rather than a client's answers."""
    if isinstance(result, str):
        try:
            result = json.loads(result)
        except ValueError:
            return False
    return isinstance(result, dict) and isinstance(result.get("questions"), list)


def answers_in(result: Any) -> str:
    """What an answered call's result says was answered: its answers joined (any other result shape,
    e.g. from another Coder client, as its text)."""
    entries = result.get("answers") if isinstance(result, dict) else None
    if isinstance(entries, list):
        texts = [str(e.get("answer") or "") for e in entries if isinstance(e, dict)]
        return "; ".join(t for t in texts if t)
    return result_text(result)


def result_text(result: Any) -> str:
    """A tool result as text: chatd's cancellations are a JSON string (the reason)."""
    return result if isinstance(result, str) else json.dumps(result) if result is not None else ""


def answer_in_words(messages: Sequence[Message], text: str) -> Message | None:
    """The newest of ``messages`` that is the result of a question answered with ``text`` in someone's
    own words (how a reply that answered a question is found again)."""
    for message in reversed(messages):
        for part in message.content:
            if (
                part.type == "tool-result"
                and part.tool_name == ASK_USER_QUESTION
                and _in_words(part.result, text)
            ):
                return message
    return None


def _in_words(result: Any, text: str) -> bool:
    entries = result.get("answers") if isinstance(result, dict) else None
    return isinstance(entries, list) and any(
        isinstance(e, dict) and e.get("freeform") is True and e.get("answer") == text for e in entries
    )


def words_for_all(questions: Sequence[Question], text: str) -> list[Answer]:
    """A reply in the person's own words, as the answer to every question asked at once."""
    return [Answer(text, option=False) for _ in questions]
