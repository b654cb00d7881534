"""One stream task per live chat: Coder events -> ThreadView -> outbox, with a durable cursor.

A chat is followed while it is busy. When its turn ends the task stops; a follow-up from Slack (or a
restart that finds the chat last seen busy) starts it again, resuming after the stored cursor. A turn
that stops to wait for its person (G2's ``requires_action``, which Coder ends after five minutes at
the latest) is not over: the person is told, and the chat is followed on through the wait, so the
reply that ends it is seen like any follow-up to a busy chat. The
final texts of a batch are stored in the outbox in the same transaction that advances the cursor,
so a crash either replays the batch or finds its texts durable: it can repeat an edit but never
skip or double a message. The reactions a batch decides (``Marks.see``) go in the same transaction.
Progress (a streaming draft, a running card) stays in memory: the replay from the cursor
regenerates it.

When the stream gives up (Coder unreachable for a while), the chat is tried again at once, unseen:
a streak of 5xx that a REST call's own retries could not outlast is often over a second later. Only
when that try gives up too is the thread told (once) and the chat tried again after
``retry_interval``, or at once when someone replies in the thread. The notice is keyed by the stored
cursor the next run starts from, so that run (in this process or after a restart) finds it and, once
Coder's stream answers, turns it into word that the connection is back.

While a turn is slow to start (Coder waits for a worker, or builds the agent's workspace) no events
arrive for minutes; a clock task per followed chat then re-renders its card every ``slow_start``
seconds, so the thread shows the start taking time instead of looking stuck.

When Coder rewrites a chat's history (an edit removed messages; the newest Coder then sends the
whole history again), every reply and card the thread shows of a removed message is edited into a
line saying so, stored with the batch like any final text; those of earlier runs too, found by their
slots.

The thread's header (the bridge's status message) carries the chat's controls as buttons, and
``Marks`` keeps the thread's reactions and queue notices in step with the same stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from bridge.coder.backend import CoderBackend
from bridge.coder.errors import CoderAuthError, CoderError, CoderNotFound
from bridge.coder.types import Chat, ChatId, ChatPhase, ChatStatus, ErrorEvent, Message
from bridge.db import repo
from bridge.db.engine import Database
from bridge.db.models import ThreadLink
from bridge.relay.identity import HOW_TO_LINK, Identity
from bridge.relay.marks import Marks, ReactionNames, header_buttons
from bridge.relay.outbox import Outbox, ThreadRef, digest, final_text
from bridge.relay.output import ReactionWish, SlotText
from bridge.relay.ports import Button, Plan
from bridge.relay.sessions import SessionMirror
from bridge.relay.view import DRAFT, ThreadView, removed_by
from bridge.slack.blocks import render_error, render_header, render_outcome, render_removed
from bridge.slack.failures import render_coder_error, render_failure
from bridge.slack.mrkdwn import split_markdown
from bridge.tasks import TaskGroup

log = logging.getLogger(__name__)

HEADER_SLOT = "header"
_QUIET_RETRY = 1.0
"""Seconds before a chat whose stream gave up once is tried again, before the thread is told."""
RECONNECTED = "✅ Reconnected to Coder: this thread is followed again."


def lost_slot(cursor: int | None) -> str:
    """The slot that tells a thread its chat's connection was lost, keyed by the stored cursor the
    next run of the chat starts from."""
    return f"lost:{cursor or 0}"


def thread_ref(link: ThreadLink) -> ThreadRef:
    """The outbox address of a linked thread."""
    assert link.id is not None
    return ThreadRef(link_id=link.id, channel=link.channel_id, thread_ts=link.thread_ts)


def shown(link: ThreadLink, chat: Chat) -> Chat:
    """The chat as its thread shows it: titled as a person chose in Slack where Coder keeps its own."""
    return chat.model_copy(update={"title": link.chosen_title}) if link.chosen_title else chat


class Supervisor:
    """Makes sure exactly one stream task follows each chat that has work to show."""

    def __init__(
        self,
        db: Database,
        identity: Identity,
        outbox: Outbox,
        *,
        retry_interval: float = 60.0,
        show_reasoning: bool = False,
        slow_start: float = 10.0,
        reactions: ReactionNames | None = None,
        sessions: SessionMirror | None = None,
    ) -> None:
        self._db = db
        self._identity = identity
        self._outbox = outbox
        self._sessions = sessions
        self._retry_interval = retry_interval
        self._show_reasoning = show_reasoning
        self._slow_start = slow_start
        self._reactions = reactions or ReactionNames()
        self._marks: dict[str, Marks] = {}  # the reactions of each chat followed right now
        # Chats whose last turn ended before its Slack message was recorded (the send's answer came
        # after the stream's): a follow-up recorded later still gets its reaction. One per chat.
        self._unmarked: dict[str, Marks] = {}
        self._archived: dict[str, bool] = {}  # whether each chat followed right now is archived
        self._wanted: set[str] = set()
        self._running: set[str] = set()
        self._woken: dict[str, asyncio.Event] = {}  # chats waiting to retry a lost stream
        self._gave_up: dict[str, int] = {}  # how many runs in a row gave up, for each chat followed
        self._views: dict[str, ThreadView] = {}  # the view of each chat followed right now
        self._titles: dict[str, str] = {}  # the newest title of each chat followed right now
        self._sends: dict[str, int] = {}  # sends to each followed chat begun when its stream began
        self._finishing: set[str] = set()  # followed chats whose stream will report no more changes
        self._tasks = TaskGroup("streams")
        self._clocks = TaskGroup("clocks")

    @property
    def live(self) -> int:
        """Chats currently followed."""
        return len(self._running)

    async def resume(self) -> int:
        """Follow again every chat that was busy when the bridge last stopped; returns how many."""
        async with self._db.unit() as session:
            links = await repo.find_links_to_follow(session)
        for link in links:
            assert link.chat_id is not None
            self.follow(ChatId(link.chat_id))
        return len(links)

    def follow(self, chat_id: ChatId) -> None:
        """Ensure the chat is followed; if its task is about to stop, it runs once more."""
        self._wanted.add(chat_id)
        woken = self._woken.get(chat_id)
        if woken is not None:
            woken.set()
        if chat_id not in self._running:
            self._running.add(chat_id)
            self._tasks.spawn(chat_id, self._follow(chat_id))

    def wake(self, chat_id: ChatId) -> None:
        """Coder says the chat has work (e.g. someone continued it in Coder's UI): follow it, unless a
        stream that will report that work is already open or opening."""
        if chat_id in self._running and chat_id not in self._finishing:
            return
        self.follow(chat_id)

    async def show_header(self, ref: ThreadRef, chat: Chat, *, archived: bool) -> None:
        """Show the chat's header anew (a new chat, a new title, archived or not), with the freshest
        status known. An idle one is stored first, as the stream stores the header that ends a turn:
        stored texts are shown in the order they were stored, so a rename seen while that one commits
        is not overwritten by it, and a crash before Slack shows it does not lose it."""
        if chat.id in self._titles:
            self._titles[chat.id] = chat.title
        if chat.id in self._archived:
            self._archived[chat.id] = archived
        view = self._views.get(chat.id)
        status = view.status if view is not None and view.status is not None else chat.status
        failed = chat.last_error
        reason = view.failure if view is not None else render_failure(failed) if failed is not None else ""
        header, buttons = self._header(chat.id, chat.title, status, reason, archived=archived)
        if self._sessions is not None:
            self._sessions.retitle(ref, chat.title)
        if status.phase.busy:
            self._outbox.set_text(ref, HEADER_SLOT, header, buttons=buttons)
        else:
            await self._outbox.put_with(ref, [final_text(HEADER_SLOT, header, buttons)], _write_nothing)

    async def queue_changed(self, chat_id: ChatId) -> None:
        """A follow-up was recorded as queued: its notice and reaction show its place, if the chat is
        followed (else following it starts with the queue)."""
        marks = self._marks.get(chat_id)
        if marks is not None:
            await marks.show_queue()

    async def recorded(self, chat_id: ChatId, coder_message_id: int) -> None:
        """A follow-up was recorded as delivered: the turn it started gets its reaction, also when the
        stream showed that turn before Coder's answer to the send came."""
        marks = self._marks.get(chat_id) or self._unmarked.get(chat_id)
        if marks is None:
            return
        await marks.recorded(coder_message_id)
        if not marks.unmarked and self._unmarked.get(chat_id) is marks:
            del self._unmarked[chat_id]

    def stopping(self, chat_id: ChatId) -> None:
        """A person is about to interrupt this chat: the turn under way will be reported as stopped."""
        view = self._views.get(chat_id)
        if view is not None:
            view.mark_stopped()

    async def close(self) -> None:
        """Stop following every chat (cursors are saved after every batch already)."""
        self._wanted.clear()
        await self._tasks.cancel()
        await self._clocks.cancel()

    async def _follow(self, chat_id: ChatId) -> None:
        try:
            while chat_id in self._wanted:
                self._wanted.discard(chat_id)
                self._finishing.discard(chat_id)
                if not await self._run(chat_id):
                    self._gave_up.pop(chat_id, None)
                elif chat_id not in self._wanted:
                    await self._retry_later(chat_id, quietly=self._gave_up[chat_id] == 1)
        finally:
            self._running.discard(chat_id)
            self._finishing.discard(chat_id)
            self._gave_up.pop(chat_id, None)

    async def _retry_later(self, chat_id: ChatId, *, quietly: bool) -> None:
        """Wait ``retry_interval`` (or until a follow-up wakes the chat), then follow it again; after
        a give-up the thread was not told of, try again soon instead."""
        woken = self._woken[chat_id] = asyncio.Event()
        wait = min(self._retry_interval, _QUIET_RETRY) if quietly else self._retry_interval
        try:  # asyncio.timeout, not wait_for: 3.11's wait_for loses a cancel that races a wake
            async with asyncio.timeout(wait):
                await woken.wait()
        except TimeoutError:
            log.info("following chat %s again after its stream gave up", chat_id, extra={"chat_id": chat_id})
        finally:
            del self._woken[chat_id]
        self._wanted.add(chat_id)

    async def _run(self, chat_id: ChatId) -> bool:
        """Follow the chat until its turn ends; True when the stream gave up and should be retried."""
        async with self._db.unit() as session:
            link = await repo.find_link_by_chat(session, chat_id)
            cursor = await repo.find_cursor(session, chat_id)
        if link is None:
            log.warning("not following chat %s: no Slack thread is linked to it", chat_id)
            return False
        ref = thread_ref(link)
        self._sends[chat_id] = link.sends_begun
        backend = await self._identity.backend_for_link(link)  # the chat owner's
        if backend is None:  # linked mode, and the requester's link is gone: tell them, don't retry
            await self._identity.whisper(link.channel_id, link.requester_user_id, link.thread_ts, HOW_TO_LINK)
            return False
        try:
            chat = await backend.get_chat(chat_id)
            self._titles[chat_id] = shown(link, chat).title
            # A turn that ended while nobody followed still needs its card closed and its outcome
            # told: the link, busy until a turn's ending is stored, says so though the chat is idle.
            # A turn that waits for its person is not over either.
            ongoing = chat.status.phase.busy or link.phase in repo.FOLLOWED_PHASES
            turn, newer_turn = await self._turn(backend, chat_id, cursor) if ongoing else ([], None)
            self._archived[chat_id] = link.archived
            marks = self._marks[chat_id] = Marks(
                self._db, self._outbox, self._reactions, ref, chat_id, backend
            )
            await marks.start(turn)
            draft_shown = await self._outbox.has_slot(ref, DRAFT)
            told_lost = await self._outbox.has_slot(ref, lost_slot(cursor))  # its stream gave up here
            if (
                draft_shown
                and not chat.status.phase.busy
                and not backend.capabilities.replies_outlive_connection
            ):
                # Its reply ended with the connection that carried it, so no later message completes
                # this draft: it keeps its text under a key of its own (as ``ThreadView.finish`` does).
                await self._outbox.rename(ref, DRAFT, f"partial:{cursor or 0}")
                draft_shown = False
            view = self._views[chat_id] = ThreadView(
                after_id=cursor,
                turn=turn,
                newer_turn=newer_turn,
                draft_shown=draft_shown,
                show_reasoning=self._show_reasoning,
                slow_start=self._slow_start,
                now=_now(),
            )
            await self._consume(
                backend,
                ref,
                chat_id,
                chat.title,
                view,
                marks,
                link.requester_user_id,
                lost=lost_slot(cursor) if told_lost else None,
            )
        except CoderAuthError as exc:
            refused = await self._identity.refused(
                link.team_id, link.requester_user_id, link.channel_id, link.thread_ts
            )
            if not refused:
                await self._notify(
                    ref,
                    f"Coder refused the bridge's token while following this chat: {render_coder_error(exc)}",
                )
        except CoderNotFound:
            await self._notify(ref, "This chat no longer exists in Coder (or the bridge may not see it).")
        except CoderError as exc:
            log.warning("stream of chat %s gave up: %s", chat_id, exc, extra={"chat_id": chat_id})
            self._gave_up[chat_id] = self._gave_up.get(chat_id, 0) + 1
            if self._gave_up[chat_id] > 1:
                # Keyed by the stored cursor, which the next run starts from: that run, once its
                # stream answers, finds this message and says the connection is back.
                following = self._views.get(chat_id)
                at = following.saved_id if following is not None else cursor
                await self._notify(
                    ref,
                    f"Lost the connection to Coder ({render_coder_error(exc)}). I'll keep trying; "
                    "a reply here retries at once.",
                    slot=lost_slot(at),
                )
            return True
        finally:
            self._finishing.add(chat_id)
            self._views.pop(chat_id, None)
            self._titles.pop(chat_id, None)
            self._sends.pop(chat_id, None)
            ended = self._marks.pop(chat_id, None)
            if ended is not None and ended.unmarked:
                self._unmarked[chat_id] = ended
            self._archived.pop(chat_id, None)
        return False

    async def _turn(
        self, backend: CoderBackend, chat_id: ChatId, cursor: int | None
    ) -> tuple[list[Message], int | None]:
        """The last turn's messages persisted up to the cursor, from its user message on, and the id of
        the newest user message after the cursor, if a newer turn began since."""
        if cursor is None:
            return [], None
        recent = await backend.recent_messages(chat_id)
        turn: list[Message] = []
        for message in recent:
            if message.id > cursor:
                break
            if message.role == "user":
                turn = []
            turn.append(message)
        newer = [m.id for m in recent if m.role == "user" and m.id > cursor]
        return turn, max(newer, default=None)

    async def _consume(
        self,
        backend: CoderBackend,
        ref: ThreadRef,
        chat_id: ChatId,
        title: str,
        view: ThreadView,
        marks: Marks,
        requester: str,
        *,
        lost: str | None,
    ) -> None:
        """Follow the stream until the turn ends; ``lost``: the slot of a lost-connection notice this
        run's first batch answers."""
        stream = backend.stream(chat_id, after_id=view.last_id or None)
        newest: int | None = None  # Coder's newest message id, asked once the chat looks idle
        lock = asyncio.Lock()  # the clock and the stream take turns with the view
        clock = self._clocks.spawn(chat_id, self._clock(ref, chat_id, title, view, lock))
        try:
            told = False  # whether the person was told that the agent waits for them
            answered = False  # whether Coder's stream has sent a batch in this run
            async for batch in stream:
                async with lock:
                    if not answered:
                        answered = True
                        await self._answered(ref, chat_id, lost)
                    view.apply(batch, now=_now())
                    reactions = await marks.see(batch, view)  # stored with the batch's cursor
                    await self._publish(ref, chat_id, title, view, reactions=reactions)
                    if self._sessions is not None and view.status_changed and view.status is not None:
                        shown = self._titles.get(chat_id, title)
                        self._sessions.show(ref, view.status.phase, title=shown, initiator=requester)
                    waiting = view.status is not None and view.status.phase is ChatPhase.NEEDS_USER
                    told = told and waiting
                    if view.status is None or view.busy or told:
                        newest = None
                        continue
                    # A snapshot reports the status before its messages, so idle alone does not mean
                    # the thread is complete; Coder is asked again only once the view reached its last
                    # answer. From here the loop may end without reading the stream again: work Coder
                    # reports meanwhile (a message sent in its UI) must wake a new run, not this one.
                    # A wait is told the same way, but the stream is read on: the wait ends in it.
                    if not waiting:
                        self._finishing.add(chat_id)
                    if newest is None or view.last_id >= newest:
                        newest = await self._newest_id(backend, chat_id)
                    if view.last_id >= newest:
                        if view.failed_unexplained:
                            await self._explain_failure(backend, ref, chat_id, title, view)
                        view.finish()
                        ending = self._outcome(requester, view)
                        await self._publish(ref, chat_id, title, view, ending=ending)
                        if not waiting:
                            return
                        told = True
                    self._finishing.discard(chat_id)
        finally:
            clock.cancel()
            self._finishing.add(chat_id)  # changes from here on reach no stream of this run
            await stream.aclose()

    async def _clock(
        self, ref: ThreadRef, chat_id: ChatId, title: str, view: ThreadView, lock: asyncio.Lock
    ) -> None:
        """Re-render what changes with time alone (a slow start's card) while no events come."""
        while True:
            await asyncio.sleep(self._slow_start)
            async with lock:
                if view.clock_running:
                    view.tick(_now())
                    await self._publish(ref, chat_id, title, view)

    async def _explain_failure(
        self, backend: CoderBackend, ref: ThreadRef, chat_id: ChatId, title: str, view: ThreadView
    ) -> None:
        """Show why a turn failed before this stream joined (a fast failure, one during a restart):
        the reason is the chat's ``last_error``, shown as the error event would have shown it."""
        failure = (await backend.get_chat(chat_id)).last_error
        if failure is not None:
            view.apply([ErrorEvent.of(failure)], now=_now())
            await self._publish(ref, chat_id, title, view)

    async def _newest_id(self, backend: CoderBackend, chat_id: ChatId) -> int:
        """The id of the chat's newest persisted message (0 when it has none)."""
        newest = await backend.recent_messages(chat_id, limit=1)
        return newest[-1].id if newest else 0

    async def _publish(
        self,
        ref: ThreadRef,
        chat_id: ChatId,
        title: str,
        view: ThreadView,
        *,
        ending: list[SlotText] | None = None,
        reactions: Sequence[ReactionWish] = (),
    ) -> None:
        """Apply the view's renames and changed blocks: progress in memory, final texts and the
        batch's ``reactions`` stored with the cursor. ``ending`` (the requester's mention) is stored
        with the idle status that ends the turn, so a crash before it leaves the chat busy and the
        next start finishes it."""
        for old, new in view.renames:
            await self._outbox.rename(ref, old, new)
        finals: list[SlotText] = []
        if view.rewritten is not None:  # what the thread shows of messages the rewrite removed says so
            slots = await self._outbox.slot_keys(ref)
            finals += [final_text(s, render_removed()) for s in slots if removed_by(s, view.rewritten)]
        plans: dict[str, Plan] = {}
        for key in view.changed:
            block = view.block(key)
            if not block.text:  # a draft shown before a restart, whose text this process never saw
                continue
            for index, part in enumerate(split_markdown(block.text)):
                slot = key if index == 0 else f"{key}#{index}"
                plan = block.plan if index == 0 else None
                if block.final:
                    # Shown at once, stored after: a crash before the store replays the message.
                    self._outbox.set_text(ref, slot, part, plan=plan)
                    finals.append(final_text(slot, part))
                    if plan is not None:
                        plans[slot] = plan
                else:
                    self._outbox.set_text(ref, slot, part, plan=plan)
        if view.status_changed and view.status is not None:
            archived = self._archived.get(chat_id, False)
            header, buttons = self._header(chat_id, title, view.status, view.failure, archived=archived)
            if view.busy:
                self._outbox.set_text(ref, HEADER_SLOT, header, buttons=buttons)
            else:  # an idle status is what people wait for: final texts go first
                finals.append(final_text(HEADER_SLOT, header, buttons))
        await self._save(
            ref, chat_id, view, [*finals, *(ending or ())], plans, reactions, ending=ending is not None
        )

    def _header(
        self, chat_id: ChatId, title: str, status: ChatStatus, reason: str = "", *, archived: bool
    ) -> tuple[str, tuple[Button, ...]]:
        """The header's text and its buttons (Stop only while the agent works)."""
        title = self._titles.get(chat_id, title)  # a rename seen while following wins
        shared = self._identity.shared
        url = shared.chat_url(chat_id)
        archivable = shared.capabilities.archive != "refuse"
        buttons = header_buttons(
            chat_id, url, busy=status.phase.busy, archived=archived, archivable=archivable
        )
        return render_header(title=title, url=url, status=status, reason=reason), buttons

    async def _save(
        self,
        ref: ThreadRef,
        chat_id: ChatId,
        view: ThreadView,
        finals: list[SlotText],
        plans: dict[str, Plan],
        reactions: Sequence[ReactionWish],
        *,
        ending: bool,
    ) -> None:
        """Store final texts, reactions, cursor and status in one transaction when any of them changed
        (most batches are deltas that change none), then have the texts (a card with its plan) and
        reactions shown."""
        moved = view.last_id > view.saved_id
        if not moved and not view.status_changed and not finals and not reactions and not ending:
            return
        write = partial(
            self._save_cursor,
            chat_id=chat_id,
            view=view,
            moved=moved,
            ending=ending,
            sends=self._sends.get(chat_id),
        )
        await self._outbox.put_with(ref, finals, write, reactions, plans=plans)
        view.saved_id = view.last_id

    @staticmethod
    async def _save_cursor(
        session: AsyncSession,
        chat_id: ChatId,
        view: ThreadView,
        *,
        moved: bool,
        ending: bool,
        sends: int | None,
    ) -> None:
        """The cursor (when it moved) and the chat's status, which drive the next start: a busy one
        when it changed, an idle one only with the turn's ending (until then the chat counts busy),
        and only if no send to the chat began after the stream did (``sends``): that send's turn is
        this stream's to follow next, or the next start's."""
        if moved:
            await repo.save_cursor(session, chat_id, view.last_id)
        if view.status is None:
            return
        status, phase = view.status.name, view.status.phase.value
        if ending:
            await repo.set_status(session, chat_id, status=status, phase=phase, sends_seen=sends)
        elif view.status_changed and view.busy:
            await repo.set_status(session, chat_id, status=status, phase=phase)

    @staticmethod
    def _outcome(requester: str, view: ThreadView) -> list[SlotText]:
        """The mention of the person who started the chat once the agent is idle or waits for them:
        one line per finished turn (keyed by its user message, so a replay never mentions twice), and
        one per wait within it (keyed by the last message before the wait), so the turn's end after
        a wait is a new message that notifies again."""
        outcome = view.outcome()
        if outcome is None:
            return []
        key = f"outcome:{outcome.turn_id}"
        if outcome.phase is ChatPhase.NEEDS_USER:
            key = f"wait:{outcome.turn_id}:{view.last_id}"
        text = render_outcome(
            requester,
            phase=outcome.phase,
            touched=outcome.touched,
            reason=outcome.failure,
            stopped=outcome.stopped,
            waiting_for=outcome.waiting_for,
        )
        return [final_text(key, text)]

    async def _answered(self, ref: ThreadRef, chat_id: ChatId, lost: str | None) -> None:
        """Coder's stream answers again: a later give-up starts a new streak, and a thread told the
        connection was lost hears that it is back, in that same message."""
        self._gave_up.pop(chat_id, None)
        if lost is not None:
            await self._outbox.put(ref, [final_text(lost, RECONNECTED)])

    async def _notify(self, ref: ThreadRef, text: str, *, slot: str | None = None) -> None:
        """An error line in the thread; under ``slot`` when a later run must find it again, else under
        a key of its text (the same notice twice is one message)."""
        key = slot or f"notice:{digest(text)[:12]}"
        await self._outbox.put(ref, [final_text(key, render_error(text))])


async def _write_nothing(_: AsyncSession) -> None:
    """A stored text's transaction with nothing else in it."""


def _now() -> float:
    """The clock the views measure durations with (the event loop's monotonic one)."""
    return asyncio.get_running_loop().time()
