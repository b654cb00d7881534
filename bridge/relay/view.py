"""Pure fold of a chat's stream events into what its Slack thread should show.

The thread is a list of blocks, each with a stable key, so replaying any events (a reconnect's
snapshot, a restart from the stored cursor, Coder's full refresh after an edit) lands on the same
keys and becomes edits of the same Slack messages, never new ones.

Keys: a persisted assistant message's block is ``after:<id of the message before it>``, so a replay
lands on the same key. The reply still streaming is the ``draft`` block. Streamed deltas carry no
message id, and in a snapshot they arrive *before* the persisted messages, so which message a draft
will become is only known when that message is persisted: then the view records a rename of
``draft`` to the message's key (the outbox moves the draft's Slack message there, so streamed text
and final text share one Slack message) and a new draft starts for what follows.

Older Coder re-sends the whole turn's deltas after a reconnect, so the draft is the turn's delta
text minus the text of the turn's already persisted replies (and the same for reasoning, when shown).
The newest Coder (reference 0a, item 3) instead says ``preview_reset`` whenever the reply being
streamed is void: a message was persisted, the model call was retried, or a connect's snapshot ends
(after which only the current step's deltas come again). From there the draft is the persisted text
plus what streams next, so a retry shows only the new attempt's text, in the same Slack message (a
placeholder until the new attempt says something). A ``retry`` event already voids the numbered
attempt streamed so far, as Coder's own UI does, so its text is not left standing through the
backoff before the ``preview_reset``. Its deltas are numbered: one from an older
preview, or one already seen, is dropped. A ``message`` for an id already seen is a revision: it
replaces the reply it shows. ``history_reset`` announces the whole history again (an edit removed
messages): the view keeps what survived, drops what did not and reports the surviving ids
(``rewritten``), by which the caller marks the removed messages in the thread (``removed_by``).
Messages from before the view's start that a replay of the whole history sends are skipped: Slack
shows them already.

Besides replies, the thread shows per turn a status card (tool calls, a slow start), a retry line
edited in place while Coder retries the model, and errors. A turn that stops to wait for its person
shows the wait on its card, which goes on (or closes) when the wait ends; what it asks (a question, a
client tool, a plan) is folded by ``relay.asked``. Statuses this bridge does
not know are logged once and skipped: the thread keeps showing the last status it understood.

Blocks hold data (``relay.content``: a reply, a card's calls and state, a retry, a failure), never
Slack text: how they read is ``slack.thread_text``'s to say, when the chat's follow publishes them.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bridge.coder.experimental_wire import parse_status
from bridge.coder.novelty import report_unknown
from bridge.coder.types import (
    ActionRequiredEvent,
    ChatFailure,
    ChatId,
    ChatPhase,
    ChatStatus,
    ConnectedEvent,
    ErrorEvent,
    HistoryResetEvent,
    Message,
    MessageEvent,
    Part,
    PartEvent,
    PreviewResetEvent,
    QueueEvent,
    RetryEvent,
    StatusEvent,
    StreamEvent,
    Usage,
)
from bridge.relay.asked import Asked, Shown
from bridge.relay.content import (
    AgentLine,
    Card,
    Content,
    Failed,
    Reply,
    Restarting,
    RetriesOver,
    Retrying,
    Starting,
    ToolLine,
)
from bridge.relay.ports import Button
from bridge.relay.slots import SlotKey

log = logging.getLogger(__name__)


DRAFT = SlotKey.draft()
_PATH_KEYS = ("path", "file", "file_path", "filename")
LATEST_LINES = 3
"""Compact: how many of a turn's latest text lines its card shows."""
PROVISIONING_TOOLS = frozenset({"create_workspace", "start_workspace"})
"""chatd's tools that build a workspace (coder/coder coderd/x/chatd/chattool): they run for minutes."""
SPAWN_TOOLS = frozenset({"spawn_agent", "spawn_explore_agent", "spawn_computer_use_agent", "spawn_subagent"})
"""chatd's tools that delegate to a sub-agent, a child chat whose id their result names
(coder/coder site/src/pages/AgentsPage/components/ChatElements/tools/subagentDescriptor.ts)."""


def removed_by(slot: SlotKey, surviving: frozenset[int]) -> bool:
    """Whether a history rewrite that left only ``surviving`` (every visible message id) removed the
    reply or card a thread shows under ``slot`` (a reply, a partial one or a card, each also in
    parts): the message it is anchored to is gone, and takes the block with it."""
    anchor = slot.anchored_to()
    return anchor is not None and anchor not in surviving


@dataclass
class _Call:
    name: str
    summary: str = ""
    state: str = "running"
    touched: tuple[str, ...] = ()
    started: float = 0.0
    title: str = ""  # what a spawn names its sub-agent


@dataclass
class _Agent:
    """A sub-agent the turn delegated to: a child chat, by the title the spawn gave it."""

    title: str
    status: ChatStatus | None = None


@dataclass
class _Deltas:
    """One kind of a turn's streamed text (reply or reasoning): what the deltas said, and how much
    of it the turn's persisted messages already hold; the rest is what the draft shows."""

    streamed: str = ""
    persisted: str = ""

    def pending(self) -> str:
        """The streamed text no persisted message holds yet (none when the two disagree)."""
        if not self.streamed.startswith(self.persisted):
            return ""
        return self.streamed.removeprefix(self.persisted)

    def drop_finished(self) -> None:
        """Forget deltas that persisted messages hold in full (they belong to a turn that is over)."""
        if self.streamed.startswith(self.persisted) and not self.pending().strip():
            self.streamed = ""


@dataclass
class _Retry:
    """A series of retries of the model call, shown as one line edited in place."""

    key: SlotKey
    attempts: int = 0
    error: str = ""


def summarize_args(args: Any) -> str:
    """A short hint of what a tool call does: its first string argument, cut to 60 characters."""
    if isinstance(args, dict):
        for value in args.values():
            if isinstance(value, str) and value.strip():
                line = value.strip().splitlines()[0]
                return line if len(line) <= 60 else line[:59] + "…"
        for value in args.values():
            hint = summarize_args(value)
            if hint:
                return hint
    if isinstance(args, list) and args:
        return summarize_args(args[0])
    return ""


def touched_files(args: Any) -> tuple[str, ...]:
    """Base names of the files a tool call names (``path``/``file``… arguments, at any depth)."""
    found: list[str] = []
    if isinstance(args, dict):
        for key, value in args.items():
            if key in _PATH_KEYS and isinstance(value, str) and value:
                found.append(value.rstrip("/").rsplit("/", 1)[-1])
            else:
                found.extend(touched_files(value))
    elif isinstance(args, list):
        for item in args:
            found.extend(touched_files(item))
    return tuple(dict.fromkeys(found))


@dataclass(frozen=True)
class Outcome:
    """How a turn ended: what the requester is told."""

    turn_id: int
    phase: ChatPhase
    touched: tuple[str, ...]
    failure: ChatFailure | None
    stopped: bool
    waiting_for: tuple[str, ...] = ()
    usage: tuple[Usage, ...] = ()
    """What each model call of the turn used, as Coder recorded it on the turn's replies."""


@dataclass(frozen=True)
class Passed:
    """A turn whose end the stream went past (``ThreadView.take_passed``), and where its line goes."""

    outcome: Outcome
    at: int
    """How many of the batch's ``changed`` blocks come before the line: those of the turn it ended."""


@dataclass
class Block:
    """One logical piece of the thread; ``final`` blocks will not change again in this turn.
    ``content`` is None while the block only holds its place: a card placed at its turn's first tool
    call, or a draft shown before a restart, whose text this process never saw."""

    key: SlotKey
    content: Content | None
    final: bool
    buttons: tuple[Button, ...] = ()
    """What a person can click under the block (the answers a question offers)."""


class ThreadView:
    """The Slack-side state of one chat, folded from its stream events.

    Time enters only as ``now`` arguments (seconds on any monotonic clock), so the fold stays pure:
    the caller passes the clock with every batch and calls ``tick`` while a card shows a running
    clock (a slow start), which is the only thing that changes without an event.
    """

    def __init__(
        self,
        *,
        after_id: int | None = None,
        turn: Sequence[Message] = (),
        newer_turn: int | None = None,
        draft_shown: bool = False,
        show_reasoning: bool = False,
        compact: bool = False,
        slow_start: float = 10.0,
        now: float = 0.0,
        chat_url: Callable[[ChatId], str] = str,
        chat_id: str = "",
    ) -> None:
        """Start after ``after_id``.

        ``turn`` holds the current turn's persisted messages up to it (from its user message on), so
        a restart mid-turn rebuilds the draft and the turn's card. ``newer_turn``: the id of the newest
        user message after ``after_id``, when the chat went on to newer turns meanwhile. A snapshot sends
        the running turn's deltas before the messages that lead up to it, so they are held until that
        user message came: they must not land on the card or the draft of a turn before it.
        ``draft_shown`` says that a draft from before a restart is in the thread, so the next
        persisted reply takes it over.
        ``show_reasoning`` shows the model's reasoning above each reply (quoted, trimmed);
        ``compact`` keeps a turn's intermediate texts on its card (see ``Card.latest``) and shows only
        its final reply as a message of its own;
        ``slow_start`` is how long a turn may stay starting before its card says so; ``chat_url``
        links a sub-agent's chat id to the chat in Coder; ``chat_id`` is what the buttons under a
        question name, so a click finds its chat (``Asked``).
        """
        self.last_id = 0
        self.status: ChatStatus | None = None
        self.status_changed = False
        self._show_reasoning = show_reasoning
        self._compact = compact
        self._slow_start = slow_start
        self._now = now
        self._known_ids: list[int] = []  # ids of the messages seen, and the cursor: predecessors
        self._seen: set[int] = set()  # ids of the messages whose content this view processed
        self._text = _Deltas()
        self._reasoning = _Deltas()
        self._turn_texts: dict[int, tuple[str, str]] = {}  # the turn's replies: id -> (text, reasoning)
        self._steps: dict[int, str] = {}  # compact: the turn's intermediate texts (replies that call tools)
        self._turn_usage: dict[int, Usage] = {}  # what the turn's replies' model calls used, by id
        self._turn_id: int | None = None
        self._calls: dict[str, _Call] = {}
        self._agents: dict[str, _Agent] = {}  # the turn's sub-agents, by child chat id
        self._chat_url = chat_url
        self._unsaved_calls: set[str] = set()  # calls only streamed so far: a void preview takes them
        self._episode = (0, 0)  # the newest preview a numbered delta came from: (history, attempt)
        self._seq = 0  # the newest delta's number within it
        self._stale_up_to: tuple[int, int] | None = None  # previews a live reset voided
        self._joining = False  # a connect's snapshot is under way (its reset voids nothing shown)
        self._rewrite: list[StreamEvent] | None = None  # the history sent again after a history reset
        self.rewritten: frozenset[int] | None = None
        self._failure: ChatFailure | None = None
        self._waiting_for: tuple[str, ...] = ()
        self._asked = Asked(chat_id)  # the agent's questions, waits and plans
        self._starting_since: float | None = None
        self._slow_start_shown = False
        self._retry: _Retry | None = None
        self._retry_series = 0
        self._stopped_turn: int | None = None
        self._ended_turn: int | None = None  # the turn whose end this view's caller told (``finish``)
        self._passed: list[Passed] = []  # turns that ended unseen, for ``take_passed``
        self._blocks: dict[SlotKey, Block] = {}
        self.changed: list[SlotKey] = []
        self.renames: list[tuple[SlotKey, SlotKey]] = []
        self.attached: list[Part] = []
        """Files the agent attached in the messages of the last batch (``file`` parts naming a
        Coder file), for the caller to post; a replayed message names its files again."""
        self._draft_of_unseen_turn = False
        for message in turn:
            self._on_message(message)
        self._asked.take_plans()  # plans of those messages were shown by the run that saw them come
        if after_id is not None and after_id > self.last_id:
            self.last_id = after_id
            self._known_ids.append(after_id)
        self.saved_id = self.last_id  # the cursor as stored; the chat's follow advances it
        self._horizon = self.last_id  # what earlier runs showed: a replay of it is not shown again
        if draft_shown:
            self._blocks[DRAFT] = Block(DRAFT, None, final=False)
            # The cursor is stored after the draft was shown, so it can lag behind the user message
            # that began the draft's turn: that message, when it comes, does not end the draft.
            self._draft_of_unseen_turn = after_id is None or not turn
        self.changed, self.attached = [], []
        self._newer_turn = newer_turn
        self._held: list[PartEvent] = []  # deltas of the newer turn, until its user message comes
        self._snapshot_next = False  # the next batch is a connect's snapshot

    @property
    def blocks(self) -> list[Block]:
        """All blocks in the order they first appeared."""
        return list(self._blocks.values())

    def block(self, key: SlotKey) -> Block:
        """One block by key."""
        return self._blocks[key]

    @property
    def busy(self) -> bool:
        """Whether the chat is (as far as the stream said) in the middle of a turn."""
        return self.status is not None and self.status.phase.busy

    @property
    def failure(self) -> ChatFailure | None:
        """Why the last turn failed, as Coder said it (None when it did not, or did not say)."""
        return self._failure

    @property
    def failed_unexplained(self) -> bool:
        """Whether the chat is in error and no error event said why: the stream joined after it
        (Coder's snapshot carries the status, never the error event)."""
        return self.status is not None and self.status.phase is ChatPhase.ERROR and self._failure is None

    @property
    def clock_running(self) -> bool:
        """Whether what the thread shows changes with time alone (a starting turn's card), so the
        caller should ``tick`` now and then."""
        return self.busy and (self._starting_since is not None or self._provisioning() is not None)

    def apply(self, batch: Iterable[StreamEvent], *, now: float = 0.0) -> None:
        """Fold one batch; afterwards ``renames`` and ``changed`` say what to do in Slack, in that order,
        and ``rewritten`` is set when the batch completed a history rewrite."""
        self.changed, self.attached = [], []
        self.renames = []
        self.rewritten = None
        self.status_changed = False
        self._now = max(self._now, now)
        for event in self._in_turn_order(batch):
            self._apply(event)
        self._update_draft()
        self._update_card()

    def _in_turn_order(self, batch: Iterable[StreamEvent]) -> list[StreamEvent]:
        """A connect's snapshot (the events after a ``ConnectedEvent``, in its batch or the next)
        sends the running turn's deltas before the messages that lead up to it (the end of an older
        turn, the running turn's user message): they go after those messages, so they land on the
        running turn, not on the card or the draft of the one before."""
        events = list(batch)
        connects = [i for i, e in enumerate(events) if isinstance(e, ConnectedEvent)]
        start = connects[-1] + 1 if connects else (0 if self._snapshot_next else len(events))
        self._snapshot_next = start == len(events) and bool(connects)
        snapshot = events[start:]
        # Only deltas ahead of the last message move: the newest Coder sends the current step's deltas
        # after the snapshot's ``preview_reset``, already where they belong.
        last = 1 + max((i for i, e in enumerate(snapshot) if isinstance(e, MessageEvent)), default=-1)
        deltas = [e for e in snapshot[:last] if isinstance(e, PartEvent)]
        rest = [e for e in snapshot[:last] if not isinstance(e, PartEvent)]
        return [*events[:start], *rest, *deltas, *snapshot[last:]]

    def tick(self, now: float) -> None:
        """Time passed without events: the card of a starting turn shows how long it has taken."""
        self.changed, self.attached = [], []
        self.renames = []
        self.rewritten = None
        self.status_changed = False
        self._now = max(self._now, now)
        self._update_card()

    def _apply(self, event: StreamEvent) -> None:
        if self._rewrite is not None:
            if isinstance(event, ConnectedEvent | HistoryResetEvent):
                self._rewrite = None  # a new snapshot, or a newer rewrite, sends the history again
            elif isinstance(event, PreviewResetEvent | PartEvent):  # the rewrite's sync is over
                history, self._rewrite = self._rewrite, None
                self._rewrite_history(history)
            else:
                self._rewrite.append(event)
                return
        match event:
            case ConnectedEvent():
                self._forget_deltas()
                self._held = []  # the new snapshot sends them again
                self._joining, self._seq = True, 0
            case HistoryResetEvent():
                self._rewrite = []
            case PreviewResetEvent():
                self._reset_preview(live=not self._joining)
                self._joining = False
            case PartEvent() if self._newer_turn is not None:
                self._held.append(event)
            case PartEvent() if not self._fresh(event):
                log.debug("dropping a stale or repeated delta of chat preview %s", self._episode)
            case StatusEvent(status=status):
                self._on_status(status)
            case PartEvent(role="assistant", part=part) if part.type == "text":
                self._recovered()
                self._text.streamed += part.text
            case PartEvent(role="assistant", part=part) if part.type == "reasoning":
                self._recovered()
                self._reasoning.streamed += part.text
            case PartEvent(part=part):
                self._recovered()
                self._on_tool_part(part, streamed=True)
            case MessageEvent(message=message):
                if message.role != "user":
                    self._recovered()
                self._on_message(message)
                if message.id == self._newer_turn:
                    held, self._held, self._newer_turn = self._held, [], None
                    for delta in held:
                        self._apply(delta)
            case ErrorEvent():
                self._failure = event.failure
                self._end_retry("failed")
                self._set(SlotKey.error(self.last_id), Failed(event.failure), final=True)
            case RetryEvent():
                if self._seq and not self._joining:
                    self._reset_preview(live=True)  # the attempt streamed is void from now, as in Coder's UI
                self._on_retry(event)
            case ActionRequiredEvent(tool_names=names, calls=calls):
                self._waiting_for = names
                self._show(self._asked.waits(calls))
            case QueueEvent():
                log.debug("stream event %s not rendered here", event.kind)

    def _fresh(self, event: PartEvent) -> bool:
        """Whether a numbered delta is new: not from a preview older than the newest (or one a reset
        voided), not one already seen. A newer preview without its reset voids the one shown."""
        if not event.seq:
            return True  # an older Coder: deltas are not numbered
        episode = (event.history_version, event.generation_attempt)
        if self._stale_up_to is not None and episode <= self._stale_up_to:
            return False
        if episode < self._episode or (episode == self._episode and event.seq <= self._seq):
            return False
        if episode > self._episode:
            if self._seq:
                self._reset_preview(live=True)
            self._episode = episode
        self._seq = event.seq
        return True

    def _reset_preview(self, *, live: bool) -> None:
        """The reply being streamed is void from the last persisted message on. Live (a retried model
        call, a persisted step) the deltas shown are gone for good; otherwise (the end of a connect's
        snapshot, a fresh delta buffer) the deltas to come start from there, and nothing shown is void."""
        self._text.streamed, self._reasoning.streamed = self._text.persisted, self._reasoning.persisted
        if not live:
            return
        if self._seq:
            self._stale_up_to = self._episode
        self._seq = 0
        for key in self._unsaved_calls:
            self._calls.pop(key, None)
        self._unsaved_calls.clear()
        draft = self._blocks.get(DRAFT)
        pending = self._reply(self._reasoning.pending(), self._text.pending())
        if draft is not None and draft.content is not None and not pending.text and pending.blank:
            self._set(DRAFT, Restarting(), final=False)  # the attempt shown is void; the next one edits this

    def _rewrite_history(self, history: list[StreamEvent]) -> None:
        """A history reset's sync is complete: ``history`` holds the whole history (and what the sync
        said after it). Whatever is anchored to a message no longer in it leaves the view, the turn
        under way too if its user message is gone (its draft kept under a key of its own, which the
        rewrite removed as well); then the history is applied, where only new or known messages count."""
        surviving = frozenset(e.message.id for e in history if isinstance(e, MessageEvent))
        self.rewritten = surviving
        if self._turn_id is not None and self._turn_id not in surviving:
            self._end_retry("stopped")
            self._adopt_draft(SlotKey.partial(self._turn_id))
            self._forget_deltas()
            self._turn_texts.clear()
            self._steps.clear()
            self._text.persisted = self._reasoning.persisted = ""
            self._turn_id, self._calls, self._agents, self._failure = None, {}, {}, None
            self._unsaved_calls.clear()
        for key in [key for key in self._blocks if removed_by(key, surviving)]:
            del self._blocks[key]
        self.changed = [key for key in self.changed if key in self._blocks]
        self.last_id = max((i for i in surviving if i <= self.last_id), default=0)
        self._known_ids = sorted({*(i for i in self._known_ids if i in surviving), self.last_id} - {0})
        self._seen &= surviving
        for event in history:
            self._apply(event)

    def _on_retry(self, event: RetryEvent) -> None:
        """Coder retries the model call: one line per series of retries, edited as attempts go by."""
        if self._retry is None:
            self._retry_series += 1
            self._retry = _Retry(key=SlotKey.retry(self._turn_id or self.last_id, self._retry_series))
        self._retry.attempts = max(self._retry.attempts, event.attempt)
        self._retry.error = event.error
        self._set(self._retry.key, Retrying(event.attempt, event.delay_ms, event.error), final=False)

    def _recovered(self) -> None:
        """The model produced output again: the retry line says the retries worked."""
        self._end_retry("recovered")

    def _end_retry(self, outcome: str) -> None:
        """The series of retries is over (``RetriesOver`` names the outcomes): its line is final."""
        retry, self._retry = self._retry, None
        if retry is not None:
            self._set(retry.key, RetriesOver(retry.attempts, outcome, retry.error), final=True)

    def answered_by(self, key: str, user_id: str) -> None:
        """A person in Slack answers a question (``Asked.answered_by``): it will say who."""
        self._asked.answered_by(key, user_id)

    def take_plans(self) -> dict[str, str]:
        """The plans the agent proposed since the last call, as tool call id -> the chat file that holds
        each; the caller reads them (the view does no input) and shows them."""
        return self._asked.take_plans()

    def _show(self, shown: list[Shown]) -> None:
        """Blocks of the agent's questions and waits, with their buttons."""
        for block in shown:
            self._set(block.key, block.content, final=True, buttons=block.buttons)

    def _on_tool_part(self, part: Part, *, streamed: bool = False) -> None:
        """Tool calls and results, streamed or persisted, keyed by call id so replays count once."""
        if part.type not in ("tool-call", "tool-result"):
            return
        key = part.tool_call_id or f"call-{len(self._calls)}"
        if streamed and key not in self._calls:
            self._unsaved_calls.add(key)
        elif not streamed:
            self._unsaved_calls.discard(key)
        call = self._calls.get(key)
        if call is None:
            call = self._calls[key] = _Call(name=part.tool_name or "tool", started=self._now)
            self._place_card()
        if part.tool_name:
            call.name = part.tool_name
        if part.type == "tool-call" and part.args is not None:
            call.summary, call.touched = summarize_args(part.args), touched_files(part.args)
            if isinstance(part.args, dict) and isinstance(part.args.get("title"), str):
                call.title = part.args["title"]
        elif part.type == "tool-result":
            call.state = "error" if part.is_error else "ok"
            if isinstance(part.result, dict) and not part.is_error:
                if call.name in SPAWN_TOOLS:
                    self._spawned(call, part.result)
                elif call.name == "wait_agent":
                    self._waited(part.result)

    def _spawned(self, call: _Call, result: dict[str, Any]) -> None:
        """A spawn's result names the child chat it made: the card shows it from now on."""
        chat_id = result.get("chat_id")
        if isinstance(chat_id, str) and chat_id and chat_id not in self._agents:
            title = result.get("title") if isinstance(result.get("title"), str) else ""
            self._agents[chat_id] = _Agent(title or call.title or call.summary)

    def _waited(self, result: dict[str, Any]) -> None:
        """``wait_agent`` returned with the sub-agent's status: the card shows it (the watch may say
        it sooner, or, where the bridge has no watch, never)."""
        agent = self._agents.get(str(result.get("chat_id", "")))
        if agent is not None and isinstance(result.get("status"), str):
            agent.status = parse_status(result["status"])

    def agent_changed(self, chat_id: str, status: ChatStatus) -> bool:
        """The watch says a child chat's status: the card line of that sub-agent shows it. False
        (nothing to show) for a chat this turn did not spawn."""
        self.changed, self.attached = [], []
        self.renames = []
        self.rewritten = None
        self.status_changed = False
        agent = self._agents.get(chat_id)
        if agent is None or agent.status == status:
            return False
        agent.status = status
        self._update_card()
        return True

    def _on_status(self, status: ChatStatus) -> None:
        if status.phase is ChatPhase.UNKNOWN:  # a newer Coder's status: keep showing what we know
            report_unknown(log, "chat status", status.name)
            return
        previous = self.status
        self.status = status
        self.status_changed = self.status_changed or previous != status
        if status.phase is ChatPhase.STARTING:
            if self._starting_since is None:
                self._starting_since = self._now
        else:
            self._starting_since = None
        if status.phase is not ChatPhase.NEEDS_USER:
            self._waiting_for = ()
        if status.phase.busy and previous is not None and previous.phase is ChatPhase.NEEDS_USER:
            self._reopen_card()  # the wait is over and the same turn goes on
        if not status.phase.busy:  # ended without output after the retries: stopped, or failed
            self._end_retry("failed" if status.phase is ChatPhase.ERROR else "stopped")
        if (
            status.phase is ChatPhase.WORKING
            and previous is not None
            and previous.phase is not ChatPhase.WORKING
        ):
            if previous.phase is ChatPhase.NEEDS_USER:  # the same turn goes on, after what it persisted
                self._reset_preview(live=False)
            else:
                self._forget_deltas()  # Coder starts a fresh delta buffer with every turn
        elif not status.phase.busy:  # the turn is over: its deltas never come back, even in a snapshot
            self._update_draft()
            self._forget_deltas()

    def _touched(self) -> tuple[str, ...]:
        """Files the turn's tool calls named, first mention first."""
        return tuple(dict.fromkeys(name for c in self._calls.values() for name in c.touched))

    def mark_stopped(self) -> None:
        """A person is interrupting the turn under way (or its wait for them, which Coder ends by
        cancelling what it waited on): its outcome will say so."""
        if self.busy or (self.status is not None and self.status.phase is ChatPhase.NEEDS_USER):
            self._stopped_turn = self._turn_id

    def outcome(self) -> Outcome | None:
        """How the last turn this view saw ended, once the chat is idle."""
        if self._turn_id is None or self.status is None or self.status.phase.busy:
            return None
        return self._turn_outcome(self._turn_id, self.status.phase)

    def _turn_outcome(self, turn_id: int, phase: ChatPhase) -> Outcome:
        usage = tuple(self._turn_usage[i] for i in sorted(self._turn_usage))
        touched, waiting_for = self._touched(), self._waiting_for
        return Outcome(turn_id, phase, touched, self._failure, self._stopped, waiting_for, usage)

    def take_passed(self) -> list[Passed]:
        """Turns that ended while this view did not see their end: a new turn's user message came
        while the turn before it still looked under way (Coder took a queued follow-up while no
        bridge followed the chat, or its idle status and the next turn came in one batch). Each is
        told like a turn seen to end, in its place among the batch's blocks; the caller leaves out
        one already told before a restart."""
        passed, self._passed = self._passed, []
        return passed

    @property
    def _stopped(self) -> bool:
        """Whether a person stopped the turn under way (``mark_stopped``)."""
        return self._stopped_turn is not None and self._stopped_turn == self._turn_id

    def finish(self) -> None:
        """The chat is idle and caught up: a draft no message took over was cut short (an interrupt, an
        error); it keeps the text it showed under a key of its own, so the next turn starts afresh."""
        self.changed, self.attached = [], []
        self.renames = []
        self.status_changed = False
        self._update_draft()
        self._adopt_draft(SlotKey.partial(self.last_id))
        self._forget_deltas()
        self._ended_turn = self._turn_id

    def _forget_deltas(self) -> None:
        """Streamed deltas will be sent again from the start (a new turn, a reconnect) or never."""
        self._text.streamed = self._reasoning.streamed = ""

    def _on_message(self, message: Message) -> None:
        new = message.id > self.last_id
        if not new and message.id not in self._seen and message.id <= self._horizon:
            log.debug("skipping message %d: from before this view, shown already", message.id)
            return
        self._seen.add(message.id)
        if new:
            previous = self.last_id
            self.last_id = message.id
            self._known_ids.append(message.id)
        else:  # a replay or a revision: find its predecessor among known ids
            at = bisect.bisect_left(self._known_ids, message.id)
            previous = self._known_ids[at - 1] if at > 0 else 0
        if message.role == "user" and new:
            if self._turn_id is not None and self._ended_turn != self._turn_id:
                phase = ChatPhase.ERROR if self._failure is not None else ChatPhase.IDLE
                self._passed.append(Passed(self._turn_outcome(self._turn_id, phase), len(self.changed)))
            self._show(self._asked.message(message))
            if self._draft_of_unseen_turn:
                self._draft_of_unseen_turn = False
            elif not self.busy:
                # A new turn after one that is over: a draft left from that turn (it failed, or its
                # connection broke) is never completed, so it keeps its text and the new turn starts afresh.
                self._adopt_draft(SlotKey.partial(previous))
            if self.status is not None and self.status.phase is ChatPhase.NEEDS_USER:
                self._reopen_card()  # the message ended the wait: the turn that waited is over
            self._close_card()
            self._text.drop_finished()
            self._reasoning.drop_finished()
            self._turn_texts.clear()
            self._steps.clear()
            self._turn_usage.clear()
            self._text.persisted = self._reasoning.persisted = ""
            self._turn_id, self._calls, self._agents, self._failure = message.id, {}, {}, None
            self._unsaved_calls.clear()
            self._slow_start_shown = False
        current = self._turn_id is None or message.id > self._turn_id  # of the turn under way
        if message.role == "assistant":
            self.attached += [p for p in message.content if p.type == "file" and p.file_id]
        shown = Reply("")
        if message.role == "assistant":
            if current:  # a revision replaces what the message held, never adds to it
                self._turn_texts[message.id] = (message.text, message.reasoning)
                if message.usage is not None:
                    self._turn_usage[message.id] = message.usage
                replies = [self._turn_texts[i] for i in sorted(self._turn_texts)]
                self._text.persisted = "".join(text for text, _ in replies)
                self._reasoning.persisted = "".join(reasoning for _, reasoning in replies)
            if self._compact and any(part.type == "tool-call" for part in message.content):
                self._steps[message.id] = message.text  # a step on the way: the card shows it
            else:
                shown = self._reply(message.reasoning, message.text)
        key, replied = SlotKey.reply_after(previous), not shown.blank
        for part in message.content:  # a reply begun before the turn's first call goes above its card
            if replied and self._shows(part):
                self._show_reply(key, shown)
            if current:
                self._on_tool_part(part)
            self._show(self._asked.part(part))
        if replied:
            self._show_reply(key, shown)

    def _shows(self, part: Part) -> bool:
        """Whether a part puts text in its message's reply block."""
        shown = part.type == "text" or (part.type == "reasoning" and self._show_reasoning)
        return shown and bool(part.text.strip())

    def _show_reply(self, key: SlotKey, shown: Reply) -> None:
        """A persisted reply's block: the message the draft streamed, now final."""
        if key not in self._blocks:
            self._adopt_draft(key)
        self._set(key, shown, final=True)

    def _reply(self, reasoning: str, text: str) -> Reply:
        """What a reply's block shows: its text, with its reasoning when reasoning is shown."""
        return Reply(text, reasoning if self._show_reasoning else "")

    def _adopt_draft(self, key: SlotKey, *, final: bool = True) -> None:
        """Hand the draft's Slack message to block ``key``; the next deltas start a new draft."""
        draft = self._blocks.pop(DRAFT, None)
        if draft is None:
            return
        self.renames.append((DRAFT, key))
        self.changed = [key if k == DRAFT else k for k in self.changed]
        self._blocks[key] = Block(key, draft.content, final=final)
        if key not in self.changed:
            self.changed.append(key)

    def _provisioning(self) -> _Call | None:
        """The running tool call that builds the agent's workspace, if any."""
        return next(
            (c for c in self._calls.values() if c.name in PROVISIONING_TOOLS and c.state == "running"),
            None,
        )

    def _starting(self) -> Starting | None:
        """How long the turn has been starting, once that is long enough to say so."""
        workspace = self._provisioning()
        if workspace is not None:
            return Starting(int(self._now - workspace.started), workspace=True)
        since = self._starting_since
        if since is not None and (self._slow_start_shown or self._now - since >= self._slow_start):
            self._slow_start_shown = True
            return Starting(int(self._now - since), workspace=False)
        return None

    def _update_card(self, phase: ChatPhase | None = None) -> None:
        """The turn's status card: shown once the turn called a tool or is slow to start, final when
        the turn ended."""
        if self._turn_id is None:
            return
        if phase is None and self._newer_turn is not None:
            return  # the turn is over (a newer began): its card is closed when that turn's message comes
        starting = self._starting() if phase is None else None
        if not self._calls and starting is None and not self._slow_start_shown:
            return
        key = SlotKey.card(self._turn_id)
        if key in self._blocks and self._blocks[key].final:
            return  # its turn is over; snapshot deltas of the next turn must not land on it
        if phase is None:
            phase = self.status.phase if self.status is not None else ChatPhase.WORKING
        calls = tuple(ToolLine(c.name, c.summary, c.state, id_) for id_, c in self._calls.items())
        agents = tuple(
            AgentLine(i, a.title, a.status, self._chat_url(ChatId(i))) for i, a in self._agents.items()
        )
        card = Card(calls, phase, self._touched(), self._failure, starting, agents, self._latest(phase))
        self._set(key, card, final=card.final)

    def _latest(self, phase: ChatPhase) -> tuple[str, ...]:
        """Compact: the last lines of the turn's intermediate texts and of what streams now, for its
        card. A turn that ended well leaves its card without them: its reply says the rest."""
        if not self._compact or (phase in (ChatPhase.IDLE, ChatPhase.DONE) and not self._stopped):
            return ()
        texts = [*(self._steps[i] for i in sorted(self._steps)), self._text.pending()]
        lines = [line.strip() for text in texts for line in text.splitlines() if line.strip()]
        return tuple(lines[-LATEST_LINES:])

    def _reopen_card(self) -> None:
        """A turn that waited for its person (its card final, showing the wait) is not over yet."""
        if self._turn_id is None:
            return
        key = SlotKey.card(self._turn_id)
        card = self._blocks.get(key)
        if card is not None and card.final:
            self._blocks[key] = Block(key, card.content, final=False)

    def _place_card(self) -> None:
        """Give the turn's card its place in the thread at its first tool call, below the text
        streamed before it, as a live stream shows them: one batch may hold a whole turn (a
        reconnect's snapshot), and the card, rendered at the batch's end, would go below all of it."""
        key = None if self._turn_id is None else SlotKey.card(self._turn_id)
        if key is None or key in self._blocks:
            return
        if self._compact and DRAFT in self._blocks:
            self._adopt_draft(key, final=False)  # what streamed so far was a step: the card shows it now
            return
        self._update_draft()
        self._set(key, None, final=False)

    def _card_open(self) -> bool:
        """Whether the turn under way has a card that is not final yet."""
        card = None if self._turn_id is None else self._blocks.get(SlotKey.card(self._turn_id))
        return card is not None and not card.final

    def _close_card(self) -> None:
        """A new turn began while the chat stayed busy (Coder went straight on to a queued
        message): the turn before it is over, so its card says done instead of working forever."""
        self._update_card(ChatPhase.IDLE)

    def _update_draft(self) -> None:
        """The reply streaming now, as its own block; compact, while the turn's card is open and the
        turn runs, it streams on the card instead (it may be a step on the way)."""
        if self._compact and self.busy and self._card_open():
            return
        draft = self._reply(self._reasoning.pending(), self._text.pending())
        if not draft.blank:
            self._set(DRAFT, draft, final=False)

    def _set(
        self, key: SlotKey, content: Content | None, *, final: bool, buttons: tuple[Button, ...] = ()
    ) -> None:
        """Show ``content`` in block ``key``; an unchanged block is not reported as changed."""
        existing = self._blocks.get(key)
        if existing is not None and (existing.content, existing.final, existing.buttons) == (
            content,
            final,
            buttons,
        ):
            return
        self._blocks[key] = Block(key, content, final, buttons)
        if key not in self.changed:
            self.changed.append(key)
