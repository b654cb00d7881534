"""Answers to what the agent asks of its person: a click on one of a question's answers, or a reply in
the thread while the question is open.

A chat that waits in ``requires_action`` on ``ask_user_question`` is answered as Coder's CLI answers
it: the call's result, submitted to Coder (``bridge.coder.questions``), after which the agent goes on
with it. Who may answer is who may follow the chat up (the access policy's ``FOLLOW_UP``), asked at
the time of the click or the reply. The question the call asks is read back from Coder at that time,
so a click on a question Coder no longer waits on (answered, or given up on) changes nothing and the
person is told why; the thread's question message says who answered what once Coder has the answer
(``ThreadView``).
"""

from __future__ import annotations

import logging

from bridge.coder.backend import CoderBackend
from bridge.coder.errors import CoderError, CoderRejected
from bridge.coder.questions import (
    ASK_USER_QUESTION,
    Answer,
    answer_result,
    asks,
    read_questions,
    words_for_all,
)
from bridge.coder.types import ChatId, ChatPhase, InputPart, Question
from bridge.db import repo
from bridge.db.engine import Database
from bridge.db.models import ThreadLink
from bridge.relay.identity import HOW_TO_LINK, Identity
from bridge.relay.links import Follows
from bridge.relay.policy import Act, Policy
from bridge.slack.failures import render_coder_error

log = logging.getLogger(__name__)

NOT_OPEN = "That question is no longer open: it was answered already, or Coder stopped waiting for an answer."
_SEARCHED = 50
"""Recent messages searched for the question a chat waits on (it is among the last few)."""


class Answers:
    """Sends people's answers to the agent's questions."""

    def __init__(self, db: Database, identity: Identity, policy: Policy, follows: Follows) -> None:
        self._db = db
        self._identity = identity
        self._policy = policy
        self._follows = follows

    async def choose(self, link: ThreadLink, user_id: str, call_id: str, option: int) -> None:
        """A click on answer ``option`` of the question asked in tool call ``call_id``."""
        if link.chat_id is None:
            return
        refusal = await self._policy.refusal(user_id, Act.FOLLOW_UP, link=link)
        backend = await self._identity.backend_for_link(link) if refusal is None else None
        if refusal is not None or backend is None:
            await self._tell(link, user_id, refusal or HOW_TO_LINK)
            return
        chat_id = ChatId(link.chat_id)
        try:
            waited = (await open_questions(backend, chat_id)).get(call_id)
            questions = waited or await asked_in_turn(backend, chat_id, call_id)
            if len(questions) != 1 or not 0 <= option < len(questions[0].options):
                await self._tell(link, user_id, NOT_OPEN)
                return
            chosen = Answer(questions[0].options[option].label, option=True)
            if waited:
                await self._submit(backend, chat_id, user_id, call_id, questions, [chosen])
            else:
                await self._send(backend, link, user_id, call_id, chosen.text)
        except CoderRejected as exc:
            log.info("an answer to chat %s was refused: %s", chat_id, exc, extra={"chat_id": chat_id})
            await self._tell(link, user_id, NOT_OPEN)
        except CoderError as exc:
            log.warning("an answer to chat %s failed: %s", chat_id, exc, extra={"chat_id": chat_id})
            await self._tell(
                link, user_id, f"Your answer did not reach the agent: {render_coder_error(exc)}."
            )

    async def in_words(self, backend: CoderBackend, chat_id: ChatId, user_id: str, text: str) -> bool:
        """A reply in the thread of a chat that waits: the answer to its open question, in the person's
        own words (to every question, when it asked several). False when no question is open (the reply
        is then a follow-up like any other); the access policy was asked for the reply already."""
        try:
            asked = await open_questions(backend, chat_id)
            if not asked:
                return False
            call_id, questions = next(reversed(asked.items()))
            await self._submit(backend, chat_id, user_id, call_id, questions, words_for_all(questions, text))
        except CoderRejected as exc:  # Coder stopped waiting meanwhile: the reply goes as a follow-up
            log.info("a reply could not answer chat %s: %s", chat_id, exc, extra={"chat_id": chat_id})
            return False
        return True

    async def _submit(
        self,
        backend: CoderBackend,
        chat_id: ChatId,
        user_id: str,
        call_id: str,
        questions: tuple[Question, ...],
        answers: list[Answer],
    ) -> None:
        self._follows.answering(chat_id, call_id, user_id)  # before Coder answers: its result may come first
        await backend.submit_tool_results(chat_id, [answer_result(call_id, questions, answers)])
        self._follows.follow(chat_id)

    async def _send(
        self, backend: CoderBackend, link: ThreadLink, user_id: str, call_id: str, text: str
    ) -> None:
        """The answer to a question chatd's own tool asked: a message, as Coder's UI sends it."""
        assert link.id is not None
        assert link.chat_id is not None
        chat_id = ChatId(link.chat_id)
        async with self._db.unit() as session:  # a crash after the send still finds the chat busy
            await repo.mark_busy(session, link.id)
        self._follows.answering(chat_id, call_id, user_id)
        await backend.send_message(chat_id, [InputPart.of_text(text)])
        self._follows.follow(chat_id)

    async def _tell(self, link: ThreadLink, user_id: str, text: str) -> None:
        await self._identity.whisper(link.channel_id, user_id, link.thread_ts, text)


async def asked_in_turn(backend: CoderBackend, chat_id: ChatId, call_id: str) -> tuple[Question, ...]:
    """The questions of call ``call_id`` when chatd's own ``ask_user_question`` asked them (plan mode)
    and no message came since to answer them; none otherwise."""
    messages = await backend.recent_messages(chat_id, limit=_SEARCHED)
    asked: tuple[Question, ...] = ()
    for message in messages:
        if asked and message.role == "user":
            return ()  # answered already
        for part in message.content:
            if part.tool_call_id != call_id or part.tool_name != ASK_USER_QUESTION:
                continue
            if part.type == "tool-call":
                asked = read_questions(part.args)
            elif part.is_error or not asks(part.result):
                return ()
    return asked


async def open_questions(backend: CoderBackend, chat_id: ChatId) -> dict[str, tuple[Question, ...]]:
    """The questions the chat waits to have answered, by tool call id, oldest first: its
    ``ask_user_question`` calls without a result, while it waits for its person (none otherwise)."""
    if (await backend.get_chat(chat_id)).status.phase is not ChatPhase.NEEDS_USER:
        return {}
    messages = await backend.recent_messages(chat_id, limit=_SEARCHED)
    parts = [p for m in messages for p in m.content]
    answered = {p.tool_call_id for p in parts if p.type == "tool-result"}
    asked: dict[str, tuple[Question, ...]] = {}
    for part in parts:
        if (
            part.type == "tool-call"
            and part.tool_name == ASK_USER_QUESTION
            and part.tool_call_id not in answered
        ):
            questions = read_questions(part.args)
            if questions:
                asked[part.tool_call_id] = questions
    return asked
