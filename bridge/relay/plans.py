"""The plan an agent proposes in plan mode: its message in the thread, and its Approve and Revise buttons.

The plan is a chat file (``bridge.coder.plans``); the thread shows it as a checklist with two buttons.
**Approve** does what Coder's own Implement button does: it sends "Implement the plan." and takes the
chat out of plan mode with that message; the plan's message then says who approved it. **Revise**
asks for words: the clicker is told (in the thread) to reply with what to change, and that reply,
a follow-up like any other while the chat is in plan mode, is the revision request the agent plans
again from. Both buttons are acts on the chat under the follow-up policy, asked at the time of the
click; a click on a plan the chat has left plan mode since changes nothing and says so.
"""

from __future__ import annotations

import logging

from bridge.coder.backend import CoderBackend
from bridge.coder.errors import CoderError
from bridge.coder.plans import IMPLEMENT, PROPOSE_PLAN, plan_file
from bridge.coder.types import ChatId, InputPart
from bridge.db import repo
from bridge.db.engine import Database
from bridge.db.models import ThreadLink
from bridge.relay.content import Plan, Step
from bridge.relay.identity import HOW_TO_LINK, Identity
from bridge.relay.links import Follows, thread_ref
from bridge.relay.outbox import Outbox, final_text
from bridge.relay.policy import Act, Policy
from bridge.relay.ports import Button
from bridge.relay.slots import SlotKey
from bridge.slack.blocks import PLAN_ASK, PLAN_MARK, PLAN_TITLE, ButtonAction, plan_items, render_plan
from bridge.slack.failures import render_coder_error

log = logging.getLogger(__name__)

APPROVED_ALREADY = "This chat is no longer in plan mode: its plan was approved already."
_SEARCHED = 50


def plan_message(chat_id: str, call_id: str, markdown: str) -> tuple[str, tuple[Button, ...], Plan]:
    """The thread's message for a proposed plan: the checklist, with its Approve and Revise buttons,
    and the same steps as a ``Plan`` for a poster that shows them as Slack's own plan and tasks."""
    value = f"{chat_id}:{call_id}"
    buttons = (
        Button(ButtonAction.PLAN_APPROVE.value, "Approve", value, style="primary"),
        Button(ButtonAction.PLAN_REVISE.value, "Revise", value),
    )
    steps = tuple(
        Step(f"{call_id}-{n}", item, "", "pending") for n, item in enumerate(plan_items(markdown), 1)
    )
    return render_plan(markdown), buttons, Plan(PLAN_TITLE, steps, PLAN_MARK + PLAN_ASK, final=True)


async def read_plan(backend: CoderBackend, file_id: str) -> str:
    """A proposed plan's Markdown (a file the agent's tool stored); raises ``CoderError``."""
    return (await backend.read_file(file_id)).decode("utf-8", errors="replace")


class Plans:
    """Carries out the Approve and Revise buttons of proposed plans."""

    def __init__(
        self, db: Database, identity: Identity, policy: Policy, outbox: Outbox, follows: Follows
    ) -> None:
        self._db = db
        self._identity = identity
        self._policy = policy
        self._outbox = outbox
        self._follows = follows

    async def approve(self, link: ThreadLink, user_id: str, call_id: str) -> None:
        """Approve: the agent implements the plan (plan mode cleared), and the plan says who approved it."""
        backend = await self._allowed(link, user_id)
        if backend is None or link.chat_id is None:
            return
        chat_id = ChatId(link.chat_id)
        try:
            if not (await backend.get_chat(chat_id)).plan_mode:
                await self._tell(link, user_id, APPROVED_ALREADY)
                return
            markdown = await self._plan_of(backend, chat_id, call_id)
            assert link.id is not None
            async with self._db.unit() as session:  # a crash after the send still finds the chat busy
                await repo.mark_busy(session, link.id)
            await backend.send_message(chat_id, [InputPart.of_text(IMPLEMENT)], leave_plan_mode=True)
        except CoderError as exc:
            log.warning("approving the plan of chat %s failed: %s", chat_id, exc, extra={"chat_id": chat_id})
            await self._tell(link, user_id, f"The plan was not approved: {render_coder_error(exc)}.")
            return
        self._follows.follow(chat_id)
        closing = f"✅ <@{user_id}> approved this plan: the agent implements it now."
        text = render_plan(markdown, closing=closing) if markdown else closing
        await self._outbox.put(thread_ref(link), [final_text(SlotKey.plan(call_id).encode(), text)])

    async def revise(self, link: ThreadLink, user_id: str, event_id: str) -> None:
        """Revise: the clicker is asked, in the thread, for what to change; their reply is the request."""
        if await self._allowed(link, user_id) is None:
            return
        text = (
            f"✏️ <@{user_id}>, reply in this thread with what to change: your reply goes to the agent, "
            "which revises the plan (it stays in plan mode until someone approves one)."
        )
        await self._outbox.put(thread_ref(link), [final_text(SlotKey.control(event_id).encode(), text)])

    async def _allowed(self, link: ThreadLink, user_id: str) -> CoderBackend | None:
        """The chat owner's backend, when the policy lets this person act on the chat now."""
        refusal = await self._policy.refusal(user_id, Act.FOLLOW_UP, link=link)
        backend = await self._identity.backend_for_link(link) if refusal is None else None
        if refusal is not None or backend is None:
            await self._tell(link, user_id, refusal or HOW_TO_LINK)
        return backend

    async def _plan_of(self, backend: CoderBackend, chat_id: ChatId, call_id: str) -> str:
        """The Markdown of the plan proposed in ``call_id`` ("" when Coder no longer shows it)."""
        for message in await backend.recent_messages(chat_id, limit=_SEARCHED):
            for part in message.content:
                file_id = plan_file(part.result) if part.tool_name == PROPOSE_PLAN else None
                if part.tool_call_id == call_id and file_id is not None:
                    return await read_plan(backend, file_id)
        return ""

    async def _tell(self, link: ThreadLink, user_id: str, text: str) -> None:
        await self._identity.whisper(link.channel_id, user_id, link.thread_ts, text)
