"""Controls of a chat, by emoji reaction or by button: interrupt, archive or unarchive, promote, remove.

Interrupt and archive count on the thread's first message and on the bot's messages in it; promote
counts on a follow-up that Coder queued (``interface.md``). A reaction anywhere else, or with
another emoji, is ignored. Buttons (``ports.ButtonAction``, ids shared with the Slack side) name their chat
(and queued message) in their value, so a click on the status message, a "Queued" notice or the
App Home tab reaches the same place. Both ways meet in ``_carry_out``: who may control a chat is the
access policy's call (by default its requester and the bridge's admins), anyone else is told
privately why nothing happened, a control runs with the chat owner's Coder token, and each control
is confirmed in the thread, a failure too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from bridge.coder.backend import CoderBackend
from bridge.coder.errors import CoderAuthError, CoderError
from bridge.coder.types import ChatId
from bridge.db import repo
from bridge.db.engine import Database
from bridge.db.models import ThreadLink
from bridge.relay.answers import Answers
from bridge.relay.home import Home
from bridge.relay.identity import Identity
from bridge.relay.intake import Intake
from bridge.relay.links import Follows, Headers, shown, thread_ref
from bridge.relay.outbox import Outbox, digest, final_text
from bridge.relay.plans import Plans
from bridge.relay.policy import Act, Policy
from bridge.relay.slots import SlotKey
from bridge.slack.blocks import ButtonAction, render_error
from bridge.slack.failures import render_coder_error
from bridge.tasks import TaskGroup

log = logging.getLogger(__name__)

_NOT_QUEUED = "“Stop and send this instead” works on a reply the agent has not taken yet (one marked Queued)."
_UNLINKED = "The chat's owner has no linked Coder account any more (`/coder link` links it again)."


class Control(StrEnum):
    """What a reaction or a button asks for."""

    INTERRUPT = "interrupt"
    ARCHIVE = "archive"
    PROMOTE = "promote"
    REMOVE = "remove"


_BUTTONS: dict[ButtonAction, tuple[Control, bool]] = {
    ButtonAction.CHAT_STOP: (Control.INTERRUPT, True),
    ButtonAction.CHAT_ARCHIVE: (Control.ARCHIVE, True),
    ButtonAction.CHAT_UNARCHIVE: (Control.ARCHIVE, False),
    ButtonAction.QUEUED_SEND_NEXT: (Control.PROMOTE, True),
    ButtonAction.QUEUED_REMOVE: (Control.REMOVE, True),
}


@dataclass(frozen=True)
class Reaction:
    """A reaction added to or removed from a message, reduced to what the relay needs."""

    event_id: str
    user_id: str
    channel_id: str
    item_ts: str
    name: str
    added: bool

    @property
    def emoji(self) -> str:
        """The reaction without a skin tone (``thumbsup::skin-tone-2`` -> ``thumbsup``)."""
        return self.name.split("::", 1)[0]


@dataclass(frozen=True)
class Click:
    """A click on one of the bridge's buttons (``block_actions``), reduced to what the relay needs.

    ``event_id`` is made from the clicking user and Slack's ``action_ts``: clicks carry no event id,
    and this one keys the durable record and the answer's slot.
    """

    event_id: str
    user_id: str
    action: ButtonAction
    chat_id: str
    queued_id: int | None = None
    call_id: str = ""
    """The tool call whose question or plan the button answers (``ButtonAction.names_call``)."""
    option: int = 0
    """Which of the question's answers was clicked."""


@dataclass(frozen=True)
class _Request:
    """One control asked for, whichever way: the common ground of reactions and clicks."""

    event_id: str
    user_id: str
    control: Control
    on: bool = True
    """False takes an archive back (unarchive)."""
    queued_id: int | None = None

    @property
    def verb(self) -> str:
        """What the control does, for a failure line."""
        if self.control is Control.ARCHIVE and not self.on:
            return "unarchive the chat"
        if self.control in (Control.PROMOTE, Control.REMOVE):
            return f"{self.control} the queued message"
        return f"{self.control} the chat"


@dataclass(frozen=True)
class SessionStop:
    """A person clicked Stop on a thread's Slack Agent Session (``agent_session_stopped``)."""

    event_id: str
    user_id: str
    channel_id: str
    thread_ts: str


class Controls:
    """Carries out reaction and button controls in the background."""

    def __init__(
        self,
        db: Database,
        identity: Identity,
        policy: Policy,
        outbox: Outbox,
        follows: Follows,
        headers: Headers,
        intake: Intake,
        *,
        emoji: dict[str, Control],
        home: Home | None = None,
    ) -> None:
        self._db = db
        self._identity = identity
        self._policy = policy
        self._outbox = outbox
        self._follows = follows
        self._headers = headers
        self._intake = intake
        self._emoji = emoji
        self._home = home
        self._answers = Answers(db, identity, policy, follows)
        self._plans = Plans(db, identity, policy, outbox, follows)
        self._tasks = TaskGroup("controls")

    def wanted(self, reaction: Reaction) -> bool:
        """Whether the reaction's emoji is one of the controls (others are not even recorded)."""
        return reaction.emoji in self._emoji

    def submit(self, command: Reaction | Click) -> None:
        """Handle a recorded reaction or click in the background (Slack wants its ack at once)."""
        work = self._react(command) if isinstance(command, Reaction) else self._click(command)
        self._tasks.spawn(command.event_id, self._intake.settle(command.event_id, work))

    def send_now(self, user_id: str, channel_id: str, ts: str, request_id: str) -> None:
        """The ``send_now`` shortcut on a queued follow-up: stop the agent, then promote it (background)."""
        self._tasks.spawn(f"send_now:{request_id}", self._send_now(user_id, channel_id, ts, request_id))

    async def _send_now(self, user_id: str, channel_id: str, ts: str, request_id: str) -> None:
        async with self._db.unit() as session:
            inbound = await repo.find_inbound(session, channel_id=channel_id, ts=ts)
            link = await repo.find_link(session, inbound.link_id) if inbound is not None else None
        if inbound is None or link is None or link.chat_id is None or inbound.queued_message_id is None:
            await self._identity.whisper(channel_id, user_id, link.thread_ts if link else None, _NOT_QUEUED)
            return
        refusal = await self._policy.refusal(user_id, Act.CONTROL, link=link)
        backend = await self._identity.backend_for_link(link) if refusal is None else None
        if refusal is not None or backend is None:
            await self._identity.whisper(channel_id, user_id, link.thread_ts, refusal or _UNLINKED)
            return
        chat_id = ChatId(link.chat_id)
        ref, slot = thread_ref(link), SlotKey.control(digest(request_id)).encode()
        try:
            if (await backend.get_chat(chat_id)).status.phase.busy:
                await self._interrupt(backend, chat_id, user_id)
            # Said before the promote, so the thread reads it before the agent's answer.
            text = f"⏭️ <@{user_id}> stopped the agent; it takes the queued message next."
            await self._outbox.put(ref, [final_text(slot, text)])
            # Once stopped, Coder may already have taken the head of its queue: nothing to promote.
            if any(q.id == inbound.queued_message_id for q in await backend.queued_messages(chat_id)):
                await self._promote(backend, link, chat_id, user_id, inbound.queued_message_id)
        except CoderError as exc:
            log.warning("send-now in chat %s failed: %s", chat_id, exc, extra={"chat_id": chat_id})
            failure = render_error(f"Couldn't send that message now: {render_coder_error(exc)}")
            await self._outbox.put(ref, [final_text(slot, failure)])

    def stop_session(self, stop: SessionStop) -> None:
        """Slack's own Stop button is the interrupt reaction on the thread's first message: the same
        access check, the same interrupt, the same confirmation in the thread."""
        emoji = next(e for e, c in self._emoji.items() if c is Control.INTERRUPT)
        self.submit(Reaction(stop.event_id, stop.user_id, stop.channel_id, stop.thread_ts, emoji, added=True))

    async def drain(self, timeout: float) -> bool:
        """Let controls in flight finish (shutdown)."""
        return await self._tasks.wait(timeout)

    async def close(self) -> None:
        """Cancel controls still in flight (their events are handled at the next start)."""
        await self._tasks.cancel()

    async def _react(self, reaction: Reaction) -> None:
        control = self._emoji[reaction.emoji]
        if control is not Control.ARCHIVE and not reaction.added:
            return  # taking back a stop or a promote undoes nothing
        queued_id: int | None = None
        async with self._db.unit() as session:
            if control is Control.PROMOTE:
                inbound = await repo.find_inbound(
                    session, channel_id=reaction.channel_id, ts=reaction.item_ts
                )
                if inbound is None or inbound.queued_message_id is None:
                    return
                queued_id = inbound.queued_message_id
                link = await repo.find_link(session, inbound.link_id)
            else:
                link = await self._find_link(session, reaction)
        request = _Request(reaction.event_id, reaction.user_id, control, reaction.added, queued_id)
        await self._carry_out(link, request)

    async def _click(self, click: Click) -> None:
        async with self._db.unit() as session:
            link = await repo.find_link_by_chat(session, click.chat_id)
        if link is None:
            log.info("a %s click names chat %s, which no thread is linked to", click.action, click.chat_id)
        if click.action is ButtonAction.QUESTION_ANSWER:
            if link is not None:
                await self._answers.choose(link, click.user_id, click.call_id, click.option)
            return
        if click.action in (ButtonAction.PLAN_APPROVE, ButtonAction.PLAN_REVISE):
            if link is None:
                return
            if click.action is ButtonAction.PLAN_APPROVE:
                await self._plans.approve(link, click.user_id, click.call_id)
            else:
                await self._plans.revise(link, click.user_id, click.event_id)
            return
        control, on = _BUTTONS[click.action]
        request = _Request(click.event_id, click.user_id, control, on, click.queued_id)
        await self._carry_out(link, request)

    async def _carry_out(self, link: ThreadLink | None, request: _Request) -> None:
        """The control, once its chat is found: the policy's check, the call to Coder, the answer."""
        if link is None or link.chat_id is None:
            return
        refusal = await self._policy.refusal(request.user_id, Act.CONTROL, link=link)
        if refusal is not None:
            await self._identity.whisper(link.channel_id, request.user_id, link.thread_ts, refusal)
            return
        backend = await self._identity.backend_for_link(link)
        if backend is None:
            text = render_error(
                f"Couldn't {request.verb}: <@{link.requester_user_id}>'s Coder account is no longer "
                "linked (`/coder link` links it again)."
            )
            await self._outbox.put(
                thread_ref(link), [final_text(SlotKey.control(request.event_id).encode(), text)]
            )
            return
        chat_id = ChatId(link.chat_id)
        try:
            text = await self._run(backend, link, chat_id, request)
        except CoderError as exc:
            log.warning("%s of chat %s failed: %s", request.control, chat_id, exc, extra={"chat_id": chat_id})
            if isinstance(exc, CoderAuthError):
                await self._identity.refused(
                    link.team_id, link.requester_user_id, link.channel_id, link.thread_ts
                )
            text = render_error(f"Couldn't {request.verb}: {render_coder_error(exc)}")
        await self._outbox.put(
            thread_ref(link), [final_text(SlotKey.control(request.event_id).encode(), text)]
        )
        if request.control is Control.ARCHIVE and self._home is not None:
            self._home.changed(link.requester_user_id)  # Coder's watch may be missing or late

    async def _run(self, backend: CoderBackend, link: ThreadLink, chat_id: ChatId, request: _Request) -> str:
        user = request.user_id
        if request.control is Control.INTERRUPT:
            return await self._interrupt(backend, chat_id, user)
        if request.control is Control.ARCHIVE:
            return await self._archive(backend, link, user, archived=request.on)
        assert request.queued_id is not None
        if request.queued_id not in {q.id for q in await backend.queued_messages(chat_id)}:
            return "ℹ️ That message is no longer queued: the agent already has it, or it was removed."
        if request.control is Control.PROMOTE:
            return await self._promote(backend, link, chat_id, user, request.queued_id)
        await backend.delete_queued(chat_id, request.queued_id)
        await self._forget_queued(link, request.queued_id, None)
        return f"🗑️ <@{user}> removed a queued message: the agent will not get it."

    async def _interrupt(self, backend: CoderBackend, chat_id: ChatId, user: str) -> str:
        self._follows.stopping(chat_id)  # before Coder answers: its idle status may come first
        await backend.interrupt(chat_id)
        self._follows.follow(chat_id)
        return f"🛑 Stopped the agent at <@{user}>'s request."

    async def _promote(
        self, backend: CoderBackend, link: ThreadLink, chat_id: ChatId, user: str, queued_id: int
    ) -> str:
        message = await backend.promote_queued(chat_id, queued_id)
        if message is not None:
            await self._forget_queued(link, queued_id, message.id)
        # else Coder only accepted it (newest builds): the stream shows the message taken from the
        # queue, which clears the notice and records the message, as for Coder's own promotions
        self._follows.follow(chat_id)
        return f"⏫ <@{user}> moved a queued message to the front: the agent gets it next."

    async def archive(self, link: ThreadLink, user_id: str, request_id: str) -> str:
        """``/coder archive``: what the archive reaction does, answered to the caller and said in the
        thread; a refusal (policy, unlinked account, Coder) is the answer and nothing changes."""
        refusal = await self._policy.refusal(user_id, Act.CONTROL, link=link)
        if refusal is not None:
            return refusal
        backend = await self._identity.backend_for_link(link)
        if backend is None or link.chat_id is None:
            return f"<@{link.requester_user_id}>'s Coder account is no longer linked, so I can't archive it."
        try:
            text = await self._archive(backend, link, user_id, archived=True)
        except CoderError as exc:
            log.warning("archive of chat %s failed: %s", link.chat_id, exc, extra={"chat_id": link.chat_id})
            return f"Couldn't archive the chat: {render_coder_error(exc)}"
        await self._outbox.put(
            thread_ref(link), [final_text(SlotKey.control(digest(request_id)).encode(), text)]
        )
        return text

    async def _archive(self, backend: CoderBackend, link: ThreadLink, user: str, *, archived: bool) -> str:
        assert link.chat_id is not None
        chat_id = ChatId(link.chat_id)
        await backend.set_archived(chat_id, archived)
        async with self._db.unit() as session:
            await repo.set_archived(session, chat_id, archived)
        if backend.capabilities.archive == "archive":  # the header's button turns into its opposite
            chat = shown(link, await backend.get_chat(chat_id))
            await self._headers.show(thread_ref(link), chat, archived=archived)
        if backend.capabilities.archive == "delete":
            return (
                f"🗑️ Deleted the chat in Coder at <@{user}>'s request (this Coder version cannot "
                "archive); replies here are no longer sent."
            )
        if archived:
            return f"🗄️ Archived by <@{user}>; remove the reaction (or click Unarchive) to unarchive."
        return f"📤 Unarchived by <@{user}>; replies here reach the agent again."

    async def _forget_queued(self, link: ThreadLink, queued_id: int, coder_message_id: int | None) -> None:
        """The relayed Slack message of a queued entry is no longer queued (delivered, or not at all)."""
        assert link.id is not None
        async with self._db.unit() as session:
            await repo.replace_queued(
                session,
                link_id=link.id,
                old_queued_id=queued_id,
                coder_message_id=coder_message_id,
                queued_message_id=None,
            )

    async def _find_link(self, session: AsyncSession, reaction: Reaction) -> ThreadLink | None:
        """The chat of a reacted thread root or bot message (one just posted is found in memory)."""
        just_posted = self._outbox.link_of(reaction.channel_id, reaction.item_ts)
        if just_posted is not None:
            return await repo.find_link(session, just_posted)
        return await repo.find_link_by_message(session, channel_id=reaction.channel_id, ts=reaction.item_ts)
