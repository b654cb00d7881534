"""One chat's follow: Coder events -> ThreadView -> outbox, with a durable cursor.

A chat is followed while it is busy. When its turn ends the run stops; a follow-up from Slack (or a
restart that finds the chat last seen busy) starts it again, resuming after the stored cursor. A turn
that stops to wait for its person (G2's ``requires_action``, which Coder ends after five minutes at
the latest) is not over: the person is told, and the chat is followed on through the wait, so the
reply that ends it is seen like any follow-up to a busy chat. The final texts of a batch are stored
in the outbox in the same transaction that advances the cursor, so a crash either replays the batch
or finds its texts durable: it can repeat an edit but never skip or double a message. The reactions
a batch decides (``Marks.see``) go in the same transaction. Progress (a streaming draft, a running
card) stays in memory: the replay from the cursor regenerates it.

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

The thread's header (the bridge's status message, ``links.Headers``) carries the chat's controls as
buttons, and ``Marks`` keeps the thread's reactions and queue notices in step with the same stream.

Why one object per chat: everything the stream of a chat decides depends on that chat's state alone
(its view, marks, header, retry streak), so it lives in one place, and the supervisor only decides
which chats have a follow. That is also the unit several replicas share the work by: a run holds
its thread's lease (``relay.leases``, PostgreSQL-held), so exactly one replica follows the chat,
at three points:

- acquisition: the supervisor starts a chat's ``run`` only once its replica holds the thread's
  lease (``Supervisor.follow`` and ``resume`` ask; a replica that does not get it leaves the chat to
  the holder, which the lease asks to hand it on when it lets go);
- heartbeat: the replica's one heartbeat renews every lease it holds and, when one is lost,
  cancels the run's task. That is safe at any await: every batch is stored before the next is read;
- fencing: ``_save`` is the one place a run writes its cursor, and with it the batch's texts and
  reactions, in one transaction: a check there that the lease is still this replica's, locking its
  row, makes a replica that lost it write nothing (``LeaseLost`` ends the run). A run's other
  writes are notices keyed by their text or cursor and reactions the outbox sets idempotently, and
  only the lease's holder sends a thread's output to Slack.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from bridge import tracing
from bridge.coder.backend import CoderBackend
from bridge.coder.errors import CoderAuthError, CoderError, CoderNotFound
from bridge.coder.types import ChatCost, ChatId, ChatPhase, ChatStatus, ErrorEvent, Message, Part, Usage
from bridge.db import repo
from bridge.db.engine import Database
from bridge.relay.agent_files import AgentFiles
from bridge.relay.content import Card, Plan
from bridge.relay.identity import HOW_TO_LINK, Identity
from bridge.relay.leases import Lease, LeaseLost, Leases
from bridge.relay.links import HEADER_SLOT, FollowedHeader, Headers, shown, thread_ref
from bridge.relay.marks import Marks, ReactionNames
from bridge.relay.outbox import Outbox, ThreadRef, digest, final_text
from bridge.relay.output import ReactionWish, SlotText
from bridge.relay.plans import plan_message, read_plan
from bridge.relay.sessions import SessionMirror
from bridge.relay.slots import SlotKey
from bridge.relay.summaries import TurnSummaries
from bridge.relay.view import DRAFT, Outcome, ThreadView, removed_by
from bridge.slack.blocks import render_error, render_outcome, render_removed, render_usage
from bridge.slack.failures import render_coder_error, render_reason
from bridge.slack.mrkdwn import split_markdown
from bridge.slack.thread_text import render_content, render_plan
from bridge.slack.workspaces import act_for
from bridge.tasks import TaskGroup

log = logging.getLogger(__name__)

_QUIET_RETRY = 1.0
"""Seconds before a chat whose stream gave up once is tried again, before the thread is told."""
_ANSWERERS_KEPT = 32
"""Answerers remembered per chat (the newest): enough for the questions a turn can leave open."""
RECONNECTED = "✅ Reconnected to Coder: this thread is followed again."


@dataclass(frozen=True)
class Shared:
    """What every follow shares: the services it writes through and the settings it runs by."""

    db: Database
    leases: Leases
    identity: Identity
    outbox: Outbox
    headers: Headers
    clocks: TaskGroup
    reactions: ReactionNames
    sessions: SessionMirror | None
    retry_interval: float
    show_reasoning: bool
    compact: bool
    """The compact thread style: a turn's steps on its card, one reply per turn (``ThreadView``)."""
    slow_start: float
    table_blocks: bool
    """Whether replies are posted as blocks, a table in a ``table`` block (not streamed natively as
    Markdown text): then a table's source does not count against a message's Markdown limit."""
    summaries: TurnSummaries
    """Coder's summaries of finished turns, met with the turns' completion lines."""
    cost_footer: bool
    """Whether a finished turn's completion line ends with what it used and what the chat cost."""
    files: AgentFiles | None = None
    """Posts the files the agent attaches into the thread (none: they are not posted)."""
    answerers: dict[str, dict[str, str]] = field(default_factory=dict)
    """Who answered which of a chat's questions from Slack (by tool call id, or ``reply_key``): kept
    beside the follows, as the answer may end one run and show in the next."""


@dataclass(frozen=True)
class _Completion:
    """A turn's completion line: how it ended, the line rendered with a summary, and the summary
    it shows now (empty: none yet, or not a finished turn)."""

    outcome: Outcome
    render: Callable[[str], SlotText]
    summary: str

    @property
    def text(self) -> SlotText:
        return self.render(self.summary)


@dataclass(frozen=True)
class _Run:
    """One run's fixed parts, once its stream is about to open."""

    ref: ThreadRef
    backend: CoderBackend  # the chat owner's
    requester: str
    view: ThreadView
    marks: Marks
    header: FollowedHeader
    sends: int  # sends to the chat begun when the run began


class ChatFollow:
    """One chat's state and its runs: at most one at a time, run again while wanted. ``run`` is the
    whole of following the chat, ``stop`` (with the run's task cancelled) ends it, and ``_save`` is
    its one write of the cursor: where a lease's acquisition, heartbeat and fencing plug in."""

    def __init__(self, chat_id: ChatId, shared: Shared) -> None:
        self.chat_id = chat_id
        self._shared = shared
        self.running = False  # a task runs ``run`` (set by ``want``, so a second one never starts)
        self._wanted = False  # run once more when the run under way ends
        self._finishing = False  # the stream under way will report no more changes
        self._gave_up = 0  # how many runs in a row gave up
        self._woken: asyncio.Event | None = None  # set while waiting to retry a lost stream
        self._marks: Marks | None = None  # the run's reactions
        # The marks of a run that ended before its Slack message was recorded (the send's answer came
        # after the stream's): a follow-up recorded later still gets its reaction.
        self._unmarked: Marks | None = None
        self._view: ThreadView | None = None  # the run's view
        self._reading: tuple[_Run, asyncio.Lock] | None = None  # the run reading its stream, and its lock
        self._lease: Lease | None = None  # the thread's lease the run holds

    @property
    def reporting(self) -> bool:
        """Whether a stream that will report the chat's next work is open or opening."""
        return self.running and not self._finishing

    @property
    def unmarked(self) -> bool:
        """Whether a turn of an ended run still waits for its Slack message to be recorded."""
        return self._unmarked is not None

    def want(self) -> bool:
        """Have the chat followed: a run under way runs once more (a retry wait ends at once). True
        when no run is under way, and the caller must start ``run`` in a task of its own."""
        self._wanted = True
        if self._woken is not None:
            self._woken.set()
        if self.running:
            return False
        self.running = True
        return True

    def elsewhere(self) -> None:
        """The run ``want`` asked for is not started here: another replica follows the chat."""
        self._wanted = False
        self.running = False

    def stop(self) -> None:
        """Run no more once the run under way ends; its owner cancels that run's task to end it now
        (as when the bridge stops, or, with leases, when the chat's lease is lost)."""
        self._wanted = False

    def stopping(self) -> None:
        """A person is about to interrupt this chat: the turn under way will be reported as stopped."""
        if self._view is not None:
            self._view.mark_stopped()

    def answering(self, call_id: str, user_id: str) -> None:
        """A person in Slack is answering the question of tool call ``call_id``: the thread says who,
        once Coder has the answer (the run under way sees it; a later one says it was answered)."""
        answerers = self._shared.answerers.setdefault(self.chat_id, {})
        answerers.pop(call_id, None)
        answerers[call_id] = user_id
        while len(answerers) > _ANSWERERS_KEPT:
            del answerers[next(iter(answerers))]
        if self._view is not None:
            self._view.answered_by(call_id, user_id)

    async def queue_changed(self) -> None:
        """A follow-up was recorded as queued: its notice and reaction show its place, if a run is
        under way (else the next run starts with the queue)."""
        if self._marks is not None:
            await self._marks.show_queue()

    async def agent_changed(self, child_id: ChatId, status: ChatStatus) -> None:
        """The watch says the status of a child chat (a sub-agent): the card of the turn that
        spawned it shows it, if a run reads the chat's stream now (a later run's card is rendered
        from the stream alone, so it shows no status the watch told before)."""
        if self._reading is None:
            return
        run, lock = self._reading
        async with lock:
            if run.view.agent_changed(child_id, status):
                await self._publish(run)

    async def recorded(self, coder_message_id: int) -> None:
        """A follow-up was recorded as delivered: the turn it started gets its reaction, also when the
        stream showed that turn before Coder's answer to the send came."""
        marks = self._marks or self._unmarked
        if marks is None:
            return
        await marks.recorded(coder_message_id)
        if not marks.unmarked and self._unmarked is marks:
            self._unmarked = None

    async def run(self, lease: Lease) -> None:
        """Follow the chat while it is wanted, under its thread's ``lease``; cancelling the task ends
        it (every batch is stored), and so does ``LeaseLost``. Its traces start at each stream batch,
        not in the work that happened to start the follow."""
        tracing.detach()
        self._lease = lease
        try:
            while self._wanted:
                self._wanted = False
                self._finishing = False
                if not await self._run_safely():
                    self._gave_up = 0
                elif not self._wanted:
                    await self._retry_later(quietly=self._gave_up == 1)
        finally:
            self.running = False
            self._finishing = False
            self._gave_up = 0
            self._lease = None

    async def _run_safely(self) -> bool:
        """``_run_once``, where a failure nobody foresaw (a database error, a bug) is retried later
        like a stream that gave up, rather than ending the chat's follow until someone writes in the
        thread: every batch is stored, so the next run goes on from the stored cursor."""
        try:
            return await self._run_once()
        except LeaseLost:
            raise
        except Exception:
            log.exception(
                "following chat %s failed; trying again later", self.chat_id, extra={"chat_id": self.chat_id}
            )
            return True

    async def _retry_later(self, *, quietly: bool) -> None:
        """Wait ``retry_interval`` (or until a follow-up wakes the chat), then follow it again; after
        a give-up the thread was not told of, try again soon instead."""
        woken = self._woken = asyncio.Event()
        interval = self._shared.retry_interval
        wait = min(interval, _QUIET_RETRY) if quietly else interval
        try:  # asyncio.timeout, not wait_for: 3.11's wait_for loses a cancel that races a wake
            async with asyncio.timeout(wait):
                await woken.wait()
        except TimeoutError:
            log.info(
                "following chat %s again after its stream gave up",
                self.chat_id,
                extra={"chat_id": self.chat_id},
            )
        finally:
            self._woken = None
        self._wanted = True

    async def _run_once(self) -> bool:
        """Follow the chat until its turn ends; True when the stream gave up and should be retried."""
        chat_id, shared = self.chat_id, self._shared
        async with shared.db.unit() as session:
            link = await repo.find_link_by_chat(session, chat_id)
            cursor = await repo.find_cursor(session, chat_id)
        if link is None:
            log.warning("not following chat %s: no Slack thread is linked to it", chat_id)
            return False
        ref = thread_ref(link)
        act_for(ref.workspace)  # this task follows the chat: every Slack call is for its thread's workspace
        backend = await shared.identity.backend_for_link(link)  # the chat owner's
        if backend is None:  # linked mode, and the requester's link is gone: tell them, don't retry
            await shared.identity.whisper(
                link.channel_id, link.requester_user_id, link.thread_ts, HOW_TO_LINK
            )
            return False
        try:
            chat = await backend.get_chat(chat_id)
            if not await shared.outbox.has_slot(ref, HEADER_SLOT):
                # A crash between the chat's creation and its header's store: the header goes
                # first, above everything this run stores.
                await shared.headers.show(ref, shown(link, chat), archived=link.archived)
            header = shared.headers.follow(chat_id, shown(link, chat).title, archived=link.archived)
            # A turn that ended while nobody followed still needs its card closed and its outcome
            # told: the link, busy until a turn's ending is stored, says so though the chat is idle.
            # A turn that waits for its person is not over either.
            ongoing = chat.status.phase.busy or link.phase in repo.FOLLOWED_PHASES
            turn, newer_turn = await self._turn(backend, cursor) if ongoing else ([], None)
            marks = self._marks = Marks(shared.db, shared.outbox, shared.reactions, ref, chat_id, backend)
            await marks.start(turn)
            draft_shown = await shared.outbox.has_slot(ref, DRAFT.encode())
            lost_slot = SlotKey.lost(cursor).encode()
            told_lost = await shared.outbox.has_slot(ref, lost_slot)  # its stream gave up here
            if (
                draft_shown
                and not chat.status.phase.busy
                and not backend.capabilities.replies_outlive_connection
            ):
                # Its reply ended with the connection that carried it, so no later message completes
                # this draft: it keeps its text under a key of its own (as ``ThreadView.finish`` does).
                await shared.outbox.rename(ref, DRAFT.encode(), SlotKey.partial(cursor or 0).encode())
                draft_shown = False
            view = self._view = header.view = ThreadView(
                after_id=cursor,
                turn=turn,
                newer_turn=newer_turn,
                draft_shown=draft_shown,
                show_reasoning=shared.show_reasoning,
                compact=shared.compact,
                slow_start=shared.slow_start,
                now=_now(),
                chat_url=backend.chat_url,
                chat_id=chat_id,
            )
            for call_id, user_id in shared.answerers.get(chat_id, {}).items():  # given before this run
                view.answered_by(call_id, user_id)
            run = _Run(ref, backend, link.requester_user_id, view, marks, header, link.sends_begun)
            await self._consume(run, lost=lost_slot if told_lost else None)
        except CoderAuthError as exc:
            refused = await shared.identity.refused(
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
            self._gave_up += 1
            if self._gave_up > 1:
                # Keyed by the stored cursor, which the next run starts from: that run, once its
                # stream answers, finds this message and says the connection is back.
                at = self._view.saved_id if self._view is not None else cursor
                await self._notify(
                    ref,
                    f"Lost the connection to Coder ({render_coder_error(exc)}). I'll keep trying; "
                    "a reply here retries at once.",
                    slot=SlotKey.lost(at).encode(),
                )
            return True
        finally:
            self._finishing = True
            self._view = None
            shared.headers.unfollow(chat_id)
            ended, self._marks = self._marks, None
            if ended is not None and ended.unmarked:
                self._unmarked = ended
        return False

    async def _turn(self, backend: CoderBackend, cursor: int | None) -> tuple[list[Message], int | None]:
        """The last turn's messages persisted up to the cursor, from its user message on, and the id of
        the newest user message after the cursor, if a newer turn began since."""
        if cursor is None:
            return [], None
        recent = await backend.recent_messages(self.chat_id)
        turn: list[Message] = []
        for message in recent:
            if message.id > cursor:
                break
            if message.role == "user":
                turn = []
            turn.append(message)
        newer = [m.id for m in recent if m.role == "user" and m.id > cursor]
        return turn, max(newer, default=None)

    async def _consume(self, run: _Run, *, lost: str | None) -> None:
        """Follow the stream until the turn ends; ``lost``: the slot of a lost-connection notice this
        run's first batch answers."""
        view, sessions = run.view, self._shared.sessions
        stream = run.backend.stream(self.chat_id, after_id=view.last_id or None)
        newest: int | None = None  # Coder's newest message id, asked once the chat looks idle
        lock = asyncio.Lock()  # the clock, the watch and the stream take turns with the view
        clock = self._shared.clocks.spawn(self.chat_id, self._clock(run, lock))
        self._reading = (run, lock)
        try:
            told = False  # whether the person was told that the agent waits for them
            answered = False  # whether Coder's stream has sent a batch in this run
            async for batch in stream:
                async with lock:
                    if not answered:
                        answered = True
                        await self._answered(run.ref, lost)
                    with tracing.span("coder.stream.batch", {"coder.events": len(batch)}, root=True):
                        view.apply(batch, now=_now())
                        reactions = await run.marks.see(batch, view)  # stored with the batch's cursor
                        plans = await self._plans(run)
                        passed = await self._passed(run)
                        ends = [(at, completion.text) for at, completion in passed]
                        await self._publish(run, reactions=reactions, proposed=plans, told=ends)
                        for _, completion in passed:
                            await self._summarised(run, completion)
                    if sessions is not None and view.status_changed and view.status is not None:
                        title, phase = run.header.title, view.status.phase
                        sessions.show(run.ref, phase, title=title, initiator=run.requester)
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
                        self._finishing = True
                    if newest is None or view.last_id >= newest:
                        newest = await self._newest_id(run.backend)
                    if view.last_id >= newest:
                        if view.failed_unexplained:
                            await self._explain_failure(run)
                        view.finish()
                        await self._end_turn(run)
                        if not waiting:
                            return
                        told = True
                    self._finishing = False
        finally:
            clock.cancel()
            self._reading = None
            self._finishing = True  # changes from here on reach no stream of this run
            await stream.aclose()

    async def _clock(self, run: _Run, lock: asyncio.Lock) -> None:
        """Re-render what changes with time alone (a slow start's card) while no events come."""
        while True:
            await asyncio.sleep(self._shared.slow_start)
            async with lock:
                if run.view.clock_running:
                    run.view.tick(_now())
                    await self._publish(run)

    async def _plans(self, run: _Run) -> list[tuple[SlotText, Plan | None]]:
        """The plans the agent proposed in the batch, read from Coder, each with its Approve and Revise
        buttons (and its steps, for a poster that shows Slack's own plan): stored with the batch, so a
        replay from the cursor never shows one twice."""
        texts: list[tuple[SlotText, Plan | None]] = []
        for call_id, file_id in run.view.take_plans().items():
            try:
                markdown = await read_plan(run.backend, file_id)
                text, buttons, plan = plan_message(self.chat_id, call_id, markdown)
            except CoderError as exc:
                log.warning(
                    "could not read a plan of chat %s: %s", self.chat_id, exc, extra={"chat_id": self.chat_id}
                )
                why = render_coder_error(exc)
                text = render_error(
                    f"The agent proposed a plan I couldn't read ({why}); open the chat in Coder."
                )
                buttons, plan = (), None
            texts.append((final_text(SlotKey.plan(call_id).encode(), text, buttons), plan))
        return texts

    async def _explain_failure(self, run: _Run) -> None:
        """Show why a turn failed before this stream joined (a fast failure, one during a restart):
        the reason is the chat's ``last_error``, shown as the error event would have shown it."""
        failure = (await run.backend.get_chat(self.chat_id)).last_error
        if failure is not None:
            run.view.apply([ErrorEvent.of(failure)], now=_now())
            await self._publish(run)

    async def _newest_id(self, backend: CoderBackend) -> int:
        """The id of the chat's newest persisted message (0 when it has none)."""
        newest = await backend.recent_messages(self.chat_id, limit=1)
        return newest[-1].id if newest else 0

    async def _publish(
        self,
        run: _Run,
        *,
        ending: list[SlotText] | None = None,
        reactions: Sequence[ReactionWish] = (),
        proposed: Sequence[tuple[SlotText, Plan | None]] = (),
        told: Sequence[tuple[int, SlotText]] = (),
    ) -> None:
        """Apply the view's renames and changed blocks: progress in memory, final texts and the
        batch's ``reactions`` stored with the cursor. ``ending`` (the requester's mention) is stored
        with the idle status that ends the turn, so a crash before it leaves the chat busy and the
        next start finishes it; ``proposed``: the plans the batch proposed, each with its ``Plan``;
        ``told``: the completion lines of turns the batch went past, each with how many of the
        changed blocks go before it (``Passed.at``)."""
        outbox, ref, view = self._shared.outbox, run.ref, run.view
        for old, new in view.renames:
            await outbox.rename(ref, old.encode(), new.encode())
        finals: list[SlotText] = [text for text, _ in proposed]
        plans: dict[str, Plan] = {text.slot: plan for text, plan in proposed if plan is not None}
        if view.rewritten is not None:  # what the thread shows of messages the rewrite removed says so
            slots = await outbox.slot_keys(ref)
            removed = [s for s in slots if removed_by(SlotKey.decode(s), view.rewritten)]
            finals += [final_text(s, render_removed()) for s in removed]
        untold = list(told)

        def tell(before: int) -> None:  # a turn's end goes where the view met it, among the blocks
            while untold and untold[0][0] <= before:
                _, line = untold.pop(0)
                outbox.set_text(ref, line.slot, line.text)
                finals.append(line)

        for position, key in enumerate(view.changed):
            tell(position)
            block = view.block(key)
            if block.content is None:  # it only holds its place so far
                continue
            text = render_content(block.content)
            whole = render_plan(block.content) if isinstance(block.content, Card) else None
            for index, part in enumerate(split_markdown(text, table_blocks=self._shared.table_blocks)):
                slot = key.part(index).encode()
                plan = whole if index == 0 else None
                buttons = block.buttons if index == 0 else ()
                if block.final:
                    # Shown at once, stored after: a crash before the store replays the message.
                    outbox.set_text(ref, slot, part, plan=plan, buttons=buttons)
                    finals.append(final_text(slot, part, buttons))
                    if plan is not None:
                        plans[slot] = plan
                else:
                    outbox.set_text(ref, slot, part, plan=plan, buttons=buttons)
        tell(len(view.changed))
        if view.status_changed and view.status is not None:
            if self._shared.leases.shared:
                await self._retitled(run)
            reason = render_reason(view.failure)
            header, buttons = self._shared.headers.render(
                self.chat_id, run.header.title, view.status, reason, archived=run.header.archived
            )
            if view.busy:
                outbox.set_text(ref, HEADER_SLOT, header, buttons=buttons)
            else:  # an idle status is what people wait for: final texts go first
                finals.append(final_text(HEADER_SLOT, header, buttons))
        await self._save(run, [*finals, *(ending or ())], plans, reactions, ending=ending is not None)

    async def _save(
        self,
        run: _Run,
        finals: list[SlotText],
        plans: dict[str, Plan],
        reactions: Sequence[ReactionWish],
        *,
        ending: bool,
    ) -> None:
        """Store final texts, reactions, cursor and status in one transaction when any of them changed
        (most batches are deltas that change none), then have the texts (a card with its plan) and
        reactions shown. The one place a run writes its cursor, fenced by the thread's lease."""
        view = run.view
        moved = view.last_id > view.saved_id
        if not moved and not view.status_changed and not finals and not reactions and not ending:
            return
        files = self._shared.files
        attached = [(run.ref.link_id, part) for part in view.attached] if files is not None else []
        write = partial(
            _save_cursor,
            chat_id=self.chat_id,
            view=view,
            moved=moved,
            ending=ending,
            sends=run.sends,
            attached=attached,
        )
        assert self._lease is not None
        fence = partial(self._shared.leases.fence, lease=self._lease)
        await self._shared.outbox.put_with(run.ref, finals, write, reactions, plans=plans, fence=fence)
        view.saved_id = view.last_id
        if files is not None and attached:
            files.wake(run.ref)

    async def _retitled(self, run: _Run) -> None:
        """Take the title the thread should show from the database: with several replicas the chat
        watch (which renames headers) may run on another, whose rename of a header shown by this
        one only reaches the database (Slack shows it from this status change on)."""
        async with self._shared.db.unit() as session:
            link = await repo.find_link_by_chat(session, self.chat_id)
        title = link.chosen_title or link.shown_title if link is not None else ""
        if title:
            run.header.title = title

    async def _end_turn(self, run: _Run) -> None:
        """The mention of the person who started the chat once the agent is idle or waits for them:
        one line per finished turn (keyed by its user message, so a replay never mentions twice), and
        one per wait within it (keyed by the last message before the wait), so the turn's end after
        a wait is a new message that notifies again. A finished turn's line shows Coder's summary of
        the turn: now, if it came already, else by an edit when it comes (``relay.summaries``)."""
        outcome = run.view.outcome()
        if outcome is None:
            await self._publish(run, ending=[])
            return
        key = SlotKey.outcome(outcome.turn_id)
        if outcome.phase is ChatPhase.NEEDS_USER:
            key = SlotKey.wait(outcome.turn_id, run.view.last_id)
        completion = await self._completion(run, outcome, key)
        await self._publish(run, ending=[completion.text])
        await self._summarised(run, completion)

    async def _passed(self, run: _Run) -> list[tuple[int, _Completion]]:
        """The completion lines of turns the stream went past without showing their end
        (``ThreadView.take_passed``), each with its place, but for one a run before a restart told."""
        passed = run.view.take_passed()
        if not passed:
            return []
        slots = [SlotKey.decode(slot) for slot in await self._shared.outbox.slot_keys(run.ref)]
        return [
            (turn.at, await self._completion(run, turn.outcome, SlotKey.outcome(turn.outcome.turn_id)))
            for turn in passed
            if not any(slot.tells_end_of(turn.outcome.turn_id) for slot in slots)
        ]

    async def _completion(self, run: _Run, outcome: Outcome, key: SlotKey) -> _Completion:
        """The line under ``key`` telling the requester how a turn ended; a finished turn's shows
        Coder's summary of the turn, if it came already (``_summarised`` has it edited in later)."""
        footer = await self._footer(run, outcome.usage) if outcome.phase is ChatPhase.IDLE else ""

        def line(summary: str) -> SlotText:
            text = render_outcome(
                run.requester,
                phase=outcome.phase,
                touched=outcome.touched,
                reason=render_reason(outcome.failure),
                stopped=outcome.stopped,
                waiting_for=outcome.waiting_for,
                summary=summary,
            )
            return final_text(key.encode(), f"{text}\n{footer}" if footer else text)

        finished = outcome.phase is ChatPhase.IDLE
        summary = self._shared.summaries.summary(self.chat_id, outcome.turn_id) if finished else ""
        return _Completion(outcome, line, summary)

    async def _summarised(self, run: _Run, completion: _Completion) -> None:
        """A finished turn's line, once stored, is edited to show Coder's summary when that comes."""
        outcome = completion.outcome
        if outcome.phase is not ChatPhase.IDLE:
            return
        summaries = self._shared.summaries
        summary, render = completion.summary, completion.render
        newer = summaries.stored(self.chat_id, outcome.turn_id, run.ref, summary, render)
        if newer is not None:
            await self._shared.outbox.put(run.ref, [newer])

    async def _footer(self, run: _Run, usage: Sequence[Usage]) -> str:
        """What the turn used and the chat cost so far, when the operator asked for it; a cost
        Coder cannot say now is left out rather than holding up the line."""
        if not self._shared.cost_footer:
            return ""
        cost: ChatCost | None = None
        try:
            cost = await run.backend.chat_cost(self.chat_id)
        except CoderError as exc:
            log.info(
                "no cost of chat %s for its footer: %s", self.chat_id, exc, extra={"chat_id": self.chat_id}
            )
        return render_usage(usage, cost)

    async def _answered(self, ref: ThreadRef, lost: str | None) -> None:
        """Coder's stream answers again: a later give-up starts a new streak, and a thread told the
        connection was lost hears that it is back, in that same message."""
        self._gave_up = 0
        if lost is not None:
            await self._shared.outbox.put(ref, [final_text(lost, RECONNECTED)])

    async def _notify(self, ref: ThreadRef, text: str, *, slot: str | None = None) -> None:
        """An error line in the thread; under ``slot`` when a later run must find it again, else under
        a key of its text (the same notice twice is one message)."""
        key = slot or SlotKey.notice(digest(text)).encode()
        await self._shared.outbox.put(ref, [final_text(key, render_error(text))])


async def _save_cursor(
    session: AsyncSession,
    chat_id: ChatId,
    view: ThreadView,
    *,
    moved: bool,
    ending: bool,
    sends: int,
    attached: Sequence[tuple[int, Part]] = (),
) -> None:
    """The cursor (when it moved) and the chat's status, which drive the next start: a busy one
    when it changed, an idle one only with the turn's ending (until then the chat counts busy),
    and only if no send to the chat began after the stream did (``sends``): that send's turn is
    this stream's to follow next, or the next start's. The files the agent attached in the
    messages the cursor passes are recorded with it (``attached``: link id and ``file`` part)."""
    for link_id, part in attached:
        await repo.add_agent_file(
            session,
            link_id=link_id,
            coder_file_id=part.file_id,
            name=part.file_name,
            media_type=part.media_type,
        )
    if moved:
        await repo.save_cursor(session, chat_id, view.last_id)
    if view.status is None:
        return
    status, phase = view.status.name, view.status.phase.value
    if ending:
        await repo.set_status(session, chat_id, status=status, phase=phase, sends_seen=sends)
    elif view.status_changed and view.busy:
        await repo.set_status(session, chat_id, status=status, phase=phase)


def _now() -> float:
    """The clock the views measure durations with (the event loop's monotonic one)."""
    return asyncio.get_running_loop().time()
