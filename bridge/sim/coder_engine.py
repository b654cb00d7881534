"""The simulator's chat daemon: status transitions, the queue, event fan-out and scripted turns.

It mirrors chatd (reference section 5). Every operation is a plain synchronous method, so the state
change and the events it publishes happen atomically with respect to other requests, exactly like
chatd's one-transaction-then-publish; the only awaits live inside the turns the agent plays.
The API generation's differences (status names, G2's ``interrupting`` step and state conflicts) are
read from its ``Dialect``; there is one engine for all of them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from bridge.sim.coder_agent import Fail, Script, Step, Turn
from bridge.sim.coder_aisdk import DataStreamOutput
from bridge.sim.coder_rules import ApiError, ToolResult, check_tool_results, derive_title
from bridge.sim.coder_state import (
    DIALECTS,
    Dialect,
    JsonDict,
    SimChat,
    SimFile,
    SimUser,
    action_required_event,
    diff_status_json,
    history_reset_event,
    message_event,
    message_json,
    part,
    part_event,
    preview_reset_event,
    queue_event,
    queued_json,
    status_event,
    stream_event,
    timestamp,
    watch_event,
)

log = logging.getLogger(__name__)

QUEUE_LIMIT: Final = 20  # chatd.MaxQueueSize
MAX_TITLE: Final = 200  # coderd maxChatTitleRunes
# "paused" and "completed" are never set: reference 7.3 found no setter for them in G1 chatd; the busy
# statuses per generation are ``Dialect.busy``.
# UNCERTAIN: the wording of G2's state-conflict 409s (coder/coder chats tests check only the status).
_NOT_INTERRUPTIBLE: Final = "Chat is not running."
_ARCHIVE_BUSY: Final = "Cannot archive an active chat."
# UNCERTAIN: the message of G2's 409 for tool results a chat does not wait for (the detail is
# chatd's ToolResultStatusConflictError text).
_NOT_WAITING: Final = "Chat is not waiting for tool results."
_REQUIRES_ACTION: Final = "requires_action"
ACTION_TIMEOUT: Final = 300.0  # chatstate requiresActionTimeout
# The results chatstate's synthesizePendingToolCancellations gives a client tool call nobody answered,
# per transition: Interrupt, SendMessage (busy_behavior interrupt), PromoteQueuedMessage (also
# FinishTurn from R1), CancelRequiresAction (the worker, once the deadline passed).
_INTERRUPTED: Final = "Tool execution interrupted by user"
_INTERRUPTED_BY_MESSAGE: Final = "Tool execution interrupted by user message"
_INTERRUPTED_BY_PROMOTION: Final = "Tool execution interrupted by queued message promotion"
_TIMED_OUT: Final = "Tool execution timed out"
# CreateChat stores a system prompt and a workspace-awareness note (hidden) before the user message;
# they take ids from the shared sequence, so clients see the gaps a real server leaves.
_HIDDEN_MESSAGES_PER_CHAT: Final = 2
_INPUT_TOKENS: Final = 1200
_CONTEXT_LIMIT: Final = 200_000


class ChangeSignal:
    """Wakes every waiter on any state change, so tests wait on conditions instead of sleeping."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    await self._event.wait()
        except TimeoutError:
            raise TimeoutError(
                f"sim.wait_for: {_describe(predicate)} still false after {timeout} s"
            ) from None


@dataclass(eq=False)
class Subscriber:
    """One open socket: the events waiting to be written, and how to cut its connection."""

    key: str
    abort: Callable[[], None]
    events: asyncio.Queue[JsonDict | None] = field(default_factory=asyncio.Queue)
    silent: bool = False

    def close(self) -> None:
        """Tell the socket's writer to stop once it has written what is already queued."""
        self.events.put_nowait(None)

    def silence(self) -> None:
        """The server goes quiet on this socket: no frames, no pings, no pongs; TCP stays open."""
        self.silent = True
        self.events.put_nowait(None)  # wakes the writer, which then writes nothing more


@dataclass(eq=False)
class _Run:
    task: asyncio.Task[None]
    turn: Turn | None = None
    answered: asyncio.Event | None = None
    """Set when the client tool call the turn waits on (``requires_action``) is resolved."""


class _ChatOutput:
    """Binds one turn's output to one chat, so the agent never sees chats or subscribers."""

    def __init__(self, engine: ChatEngine, chat: SimChat) -> None:
        self._engine = engine
        self._chat = chat

    def part(self, role: str, body: JsonDict) -> None:
        self._engine.stream_part(self._chat, role, body)

    def persist(self, role: str, content: list[JsonDict]) -> None:
        self._engine.append(self._chat, role, content)

    def retry(self, payload: JsonDict) -> None:
        self._engine.retry(self._chat, payload)

    async def await_client(self, call: JsonDict) -> None:
        await self._engine.await_client(self._chat, call)

    def spawn(self, title: str, prompt: str, steps: Sequence[Step]) -> str:
        return self._engine.spawn_child(self._chat, title, prompt, steps).id

    async def await_child(self, chat_id: str) -> JsonDict:
        return await self._engine.await_child(chat_id)

    def store_file(self, name: str, media_type: str, data: bytes) -> str:
        """chatd's StoreFileFunc: a chat file of the chat's owner (UNCERTAIN: the newest chatd also
        links it to the chat, which the simulator does not model)."""
        return self._engine.store_file(self._chat, name, media_type, data)


class ChatEngine:
    """All chats of the deployment and the turns running on them."""

    def __init__(
        self,
        *,
        agent: Script,
        scripts: Mapping[str, Script],
        part_interval: float,
        start_delay: float,
        chunk_words: int,
        dialect: Dialect = DIALECTS["experimental"],
        action_timeout: float = ACTION_TIMEOUT,
    ) -> None:
        self.chats: dict[str, SimChat] = {}
        self.files: dict[str, SimFile] = {}
        self.agent = agent
        self.scripts = dict(scripts)
        self.changes = ChangeSignal()
        self._part_interval = part_interval
        self._start_delay = start_delay
        self._chunk_words = chunk_words
        self.action_timeout = action_timeout
        self._message_ids = itertools.count(1)
        self._queued_ids = itertools.count(1)
        self._runs: dict[str, _Run] = {}
        self._child_steps: dict[str, list[Step]] = {}  # what each sub-agent's chat plays
        self._replies: set[asyncio.Task[None]] = set()
        self._streams: defaultdict[str, set[Subscriber]] = defaultdict(set)
        self._watchers: defaultdict[str, set[Subscriber]] = defaultdict(set)
        self._dialect = dialect
        self._busy = dialect.busy
        self._closed = False

    # -- requests ------------------------------------------------------------------------------

    def create_chat(
        self,
        owner: SimUser,
        content: list[JsonDict],
        *,
        title: str,
        labels: dict[str, str],
        model_config_id: str,
        workspace_id: str | None = None,
        mcp_server_ids: list[str] | None = None,
        organization_id: str = "",
        client_type: str = "api",
        parent: SimChat | None = None,
    ) -> SimChat:
        """CreateChat: born busy (G1 ``pending``, G2 ``running``), prompt stored, a turn scheduled;
        a sub-agent's chat names its ``parent``, whose ``children`` it joins."""
        # UNCERTAIN (reference 7.2): the seed doc shows "waiting"; chatd sets pending in the create tx.
        chat = SimChat(
            id=str(uuid.uuid4()),
            owner=owner.username,
            owner_id=owner.id,
            title=title,
            model_config_id=model_config_id,
            workspace_id=workspace_id,
            mcp_server_ids=list(mcp_server_ids or ()),
            status=self._dialect.queued_status,
            organization_id=organization_id,
            client_type=client_type,
            labels=labels,
            parent_id=parent.id if parent is not None else None,
        )
        self.chats[chat.id] = chat
        if parent is not None:
            parent.children.append(chat)
        for _ in range(_HIDDEN_MESSAGES_PER_CHAT):
            next(self._message_ids)
        self.append(chat, "user", content, created_by=owner.id)
        self._watch(chat, "created")
        self._start_turn(chat)
        return chat

    def store_file(self, chat: SimChat, name: str, media_type: str, data: bytes) -> str:
        """A file the agent's tool stored for the chat's owner (chattool ``StoreFileFunc``); its id."""
        file = SimFile(str(uuid.uuid4()), chat.owner_id, name, media_type, data)
        self.files[file.id] = file
        return file.id

    def send(self, chat: SimChat, content: list[JsonDict], *, interrupt: bool) -> JsonDict:
        """SendMessage: queue behind a busy chat (FIFO), else deliver and go busy.

        G2's busy "interrupt" queues too and interrupts the run; the worker then persists the partial
        reply and promotes the queue head (codersdk ChatBusyBehaviorInterrupt; coder/coder
        TestPostChatMessagesBusyInterrupt: queued=true and status ``interrupting``). A chat waiting in
        ``requires_action`` instead has its client tool calls cancelled and goes on ``running``, the
        message queued behind the rest of the turn (chatstate sendMessageInterruptRequiresAction); a
        plain send leaves it waiting, with the message queued.
        """
        if interrupt and chat.status == _REQUIRES_ACTION:
            self._cancel_calls(chat, _INTERRUPTED_BY_MESSAGE)
            queued = self._enqueue(chat, content)
            self._resume(chat)
            return {"queued": True, "queued_message": queued}
        if self._dialect.promoted and interrupt and chat.status in self._busy:
            queued = self._enqueue(chat, content)
            self._request_interrupt(chat)
            return {"queued": True, "queued_message": queued}
        if self._dialect.late and chat.status == "error" and chat.queue and not interrupt:
            # codersdk CreateChatMessageResponse.Messages: "A queued send on an errored chat may
            # promote the previous queue head, so clients must upsert the full batch."
            queued = self._enqueue(chat, content)
            return {"queued": True, "queued_message": queued, "messages": [self._promote_head(chat)]}
        if (chat.status in self._busy or chat.queue) and not interrupt:
            return {"queued": True, "queued_message": self._enqueue(chat, content)}
        self._stop_turn(chat, keep_draft=True)
        message = self.append(chat, "user", content, created_by=chat.owner_id)
        self._begin(chat)
        return {"queued": False, "message": message}

    def edit(self, chat: SimChat, message_id: int, content: list[JsonDict]) -> JsonDict:
        """EditMessage: drop the message and all later ones, store the new text under a new id."""
        target = next((m for m in chat.messages if m["id"] == message_id), None)
        if target is None:
            raise ApiError(404, "Chat message not found.", "Message does not belong to this chat.")
        if target["role"] != "user":
            raise ApiError(400, "Only user messages can be edited.")
        # A partial reply to the replaced prompt would outlive the truncation, so it is discarded.
        self._stop_turn(chat, keep_draft=False)
        chat.messages = [m for m in chat.messages if m["id"] < message_id]
        message = self._store(chat, "user", content, created_by=chat.owner_id)
        if self._dialect.late:
            # stream_loop.go: deleted rows among the changed ones make the sync a ``history_reset``
            # followed by the whole history; every later connect finds them too (``rewritten``).
            chat.rewritten = True
            self.publish(chat, history_reset_event(chat.id))
        # The "full refresh": every socket is re-sent all messages from the start (reference 4.6).
        for stored in chat.messages:
            self.publish(chat, message_event(chat.id, stored))
        chat.queue.clear()
        self._queue_changed(chat)
        if self._dialect.late:
            self._reset_preview(chat)
        self._begin(chat)
        return message

    def rewrite_message(self, chat: SimChat, message_id: int, text: str) -> None:
        """A stored message rewritten in place (chatd bumps its revision): its text parts become
        ``text`` and every socket gets the message again under its id (the late dialect's revision,
        stream_loop.go ``messageEvents``; earlier ones re-send it like their full refresh)."""
        message = next(m for m in chat.messages if m["id"] == message_id)
        others = [p for p in message.get("content", ()) if p["type"] != "text"]
        message["content"] = [part("text", text=text), *others]
        if self._dialect.late:
            chat.history_version += 1
        self.publish(chat, message_event(chat.id, message))
        if self._dialect.late:
            self._reset_preview(chat)

    def replay_parts(self, chat: SimChat) -> None:
        """The current preview's parts delivered once more, numbers and all: what the worker's relay
        sends when the stream reselects its episode (it replays from ``seq`` 1), passed on as a loop
        without ``lastPartSeq`` would. Clients must drop them."""
        for event in list(chat.parts):
            self.publish(chat, event)

    def interrupt(self, chat: SimChat) -> None:
        """InterruptChat: cancel the turn and go ``waiting``; the queue is left for the user.

        UNCERTAIN (reference 5): whether G1 persists the partial reply; G2 documents that it does, so
        it is persisted here, before the status change like any other turn-ending message. Only a
        normal turn end auto-promotes (reference 5), so an interrupt leaves the queue alone.

        G2 goes through ``interrupting`` (the answer shows it) and answers 409 for an idle chat
        (coder/coder TestInterruptChatIdleReturnsConflict). A chat waiting in ``requires_action`` has
        its client tool calls cancelled and goes on ``running``: the model sees the cancellation
        (chatstate Interrupt from A0/A1).
        """
        if chat.status == _REQUIRES_ACTION:
            self._cancel_calls(chat, _INTERRUPTED)
            self._resume(chat)
            return
        if self._dialect.promoted:
            self._request_interrupt(chat)
            return
        self._stop_turn(chat, keep_draft=True)
        self._set_status(chat, "waiting")

    def _request_interrupt(self, chat: SimChat) -> None:
        """G2: mark the chat ``interrupting``; the worker finishes the interrupt right after this request."""
        if chat.status == "interrupting":
            return
        if chat.status not in self._busy:
            raise ApiError(409, _NOT_INTERRUPTIBLE)
        self._set_status(chat, "interrupting")
        asyncio.get_running_loop().call_soon(self._complete_interrupt, chat)

    def _complete_interrupt(self, chat: SimChat) -> None:
        """The worker's half of a G2 interrupt: keep the partial reply, then the queue head or ``waiting``.

        chatstate has no "waiting with a queue" state, so a queued message is promoted (FIFO).
        """
        if self._closed or chat.status != "interrupting":
            return
        self._stop_turn(chat, keep_draft=True)
        self._finish_turn(chat)

    def set_archived(self, chat: SimChat, archived: bool) -> None:
        """Archive interrupts active processing first and unpins; watchers see deleted/created."""
        if archived == chat.archived:
            raise ApiError(400, f"Chat is already {'archived' if archived else 'not archived'}.")
        if archived and self._dialect.promoted and chat.status in self._busy:
            # G2: coder/coder TestArchiveChatStateTransitions, an active chat answers 409.
            raise ApiError(409, _ARCHIVE_BUSY)
        if archived and chat.status in self._busy:
            self.interrupt(chat)
        if archived:
            self.pin(chat, 0)
        chat.archived = archived
        chat.updated_at = timestamp()
        self._watch(chat, "deleted" if archived else "created")

    def set_labels(self, chat: SimChat, labels: dict[str, str]) -> None:
        chat.labels = labels
        self.changes.notify()

    def pin(self, chat: SimChat, order: int) -> None:
        """0 unpins; pinning appends (the asked order is ignored); re-pinning moves, clamped to 1..n."""
        if order < 0:
            raise ApiError(400, "Pin order must be non-negative.")
        if order > 0 and chat.archived:
            raise ApiError(400, "Cannot pin an archived chat.")
        pinned = sorted(
            (c for c in self.chats.values() if c.owner_id == chat.owner_id and c.pin_order and c is not chat),
            key=lambda c: c.pin_order,
        )
        if order > 0:
            position = len(pinned) if not chat.pin_order else min(order, len(pinned) + 1) - 1
            pinned.insert(position, chat)
        chat.pin_order = 0
        for rank, pinned_chat in enumerate(pinned, start=1):
            pinned_chat.pin_order = rank
        self.changes.notify()

    def delete_queued(self, chat: SimChat, queued_id: int) -> None:
        """DeleteQueued, publishing the remaining queue."""
        # UNCERTAIN: an id that is not queued is not an error (204), like a DELETE matching no row.
        remaining = [q for q in chat.queue if q["id"] != queued_id]
        if len(remaining) != len(chat.queue):
            chat.queue = remaining
            self._queue_changed(chat)

    def promote(self, chat: SimChat, queued_id: int) -> JsonDict:
        """PromoteQueued: the item becomes the next user message now.

        A running turn is cut short: the ``pending`` notification cancels the local run in chatd
        (reference 5), and chatd's cleanup keeps the ``pending`` someone else set. A chat waiting in
        ``requires_action`` has its client tool calls cancelled first; the turn that made them is over.
        """
        queued = next((q for q in chat.queue if q["id"] == queued_id), None)
        if queued is None:
            raise ApiError(500, "Failed to promote queued message.", "queued message not found")
        self._cancel_calls(chat, _INTERRUPTED_BY_PROMOTION)
        self._stop_turn(chat, keep_draft=True)
        chat.queue.remove(queued)
        message = self.append(chat, "user", queued["content"], created_by=chat.owner_id)
        self._queue_changed(chat)
        self._begin(chat)
        return message

    def submit_tool_results(self, chat: SimChat, results: list[ToolResult]) -> None:
        """SubmitToolResults (chatstate CompleteRequiresAction): one ``tool`` message per result, then
        ``running``, and the parked turn goes on; 409 unless the chat waits in ``requires_action``."""
        if chat.status != _REQUIRES_ACTION:
            detail = f'chat status is "{chat.status}", expected "{_REQUIRES_ACTION}"'
            raise ApiError(409, _NOT_WAITING, detail)
        names = {call["tool_call_id"]: call["tool_name"] for call in chat.pending_calls}
        check_tool_results(results, names)
        chat.pending_calls = []
        for result in results:
            flags = {"is_error": True} if result.is_error else {}
            answer = part(
                "tool-result",
                tool_call_id=result.tool_call_id,
                tool_name=names[result.tool_call_id],
                result=result.output,
                **flags,
            )
            self.append(chat, "tool", [answer])
        self._resume(chat)

    def spawn_child(self, parent: SimChat, title: str, prompt: str, steps: Sequence[Step]) -> SimChat:
        """A sub-agent (the newest source only): a child chat of the parent's owner, announced as
        ``created`` to watchers, whose turn plays ``steps`` (chatd runs it like any chat)."""
        if not self._dialect.late:
            raise RuntimeError(f"Coder {self._dialect.generation} has no sub-agents")
        owner = SimUser(parent.owner_id, parent.owner)
        child = self.create_chat(
            owner,
            [part("text", text=prompt)],
            title=title,
            labels={},
            model_config_id=parent.model_config_id,
            organization_id=parent.organization_id,
            parent=parent,
        )
        self._child_steps[child.id] = list(steps)
        return child

    async def await_child(self, chat_id: str) -> JsonDict:
        """``wait_agent``: once the child's turn ended, its status and its last reply as the report."""
        child = self.chats[chat_id]
        await self.changes.wait_for(lambda: chat_id not in self._runs and child.status != "running", 3600.0)
        replies = [m for m in child.messages if m["role"] == "assistant"]
        report = (
            "".join(p["text"] for p in replies[-1].get("content", ()) if p["type"] == "text")
            if replies
            else ""
        )
        return {"chat_id": chat_id, "status": child.status, "report": report}

    def regenerate_title(self, chat: SimChat) -> None:
        """A "generated" title: the latest prompt's first words, announced as ``title_change``."""
        chat.title = derive_title(_latest_prompt(chat))
        chat.updated_at = timestamp()
        self._watch(chat, "title_change")

    def rename(self, chat: SimChat, raw: str) -> None:
        """G2's ``applyChatTitleUpdate``: trimmed, not empty, at most 200 characters (runes); the same
        title writes and announces nothing."""
        title = raw.strip()
        if not title:
            raise ApiError(400, "Title cannot be empty.")
        if len(title) > MAX_TITLE:
            raise ApiError(400, f"Title must be at most {MAX_TITLE} characters.")
        if title != chat.title:
            self.set_title(chat, title)

    def set_title(self, chat: SimChat, title: str) -> None:
        """chatd's title generation: UpdateChatTitleByID, then ``title_change`` to watchers."""
        chat.title = title
        chat.updated_at = timestamp()
        self._watch(chat, "title_change")

    def set_diff(self, chat: SimChat, status: Mapping[str, Any], contents: Mapping[str, Any]) -> None:
        """PublishDiffStatusChange: store the status (and GET /diff contents), then tell watchers."""
        chat.diff_status = diff_status_json(chat.id, status)
        chat.diff = dict(contents)
        self._watch(chat, "diff_status_change")

    def media_type_of(self, owner_id: str, file_id: str) -> str | None:
        """The stored type of a file the owner uploaded; others' files do not exist for them."""
        file = self.files.get(file_id)
        return file.media_type if file is not None and file.owner_id == owner_id else None

    # -- G0a: the request is the turn -----------------------------------------------------------

    def open_chat(self, owner: SimUser, title: str) -> SimChat:
        """G0a postChats: an empty chat; nothing runs until a message is posted."""
        chat = SimChat(str(uuid.uuid4()), owner.username, owner.id, title, model_config_id="")
        self.chats[chat.id] = chat
        self.changes.notify()
        return chat

    def delete_chat(self, chat: SimChat) -> None:
        """DeleteChat removes the row (messages cascade); a reply still streaming plays on, unstored."""
        self.chats.pop(chat.id, None)
        self.changes.notify()

    def retitle(self, chat: SimChat, title: str) -> None:
        """UpdateChatByID: the only write that moves a G0a chat's ``updated_at``."""
        chat.title = title
        chat.updated_at = timestamp()
        self.changes.notify()

    def keep(self, chat: SimChat, message: JsonDict) -> None:
        """InsertChatMessages: one stored aisdk.Message, appended in insertion order."""
        chat.messages.append(message)
        self.changes.notify()

    def reply(
        self, chat: SimChat, prompt: str, output: DataStreamOutput, abort: Callable[[], None]
    ) -> asyncio.Task[None]:
        """Play the script for ``prompt`` into ``output`` as a task the engine cancels on close.

        Replies are not serialized per chat: coderd's handler takes no lock and runs one model loop
        per request, so two POSTs on one chat stream side by side. The reply counts as the chat's
        stream for ``active_streams`` and ``drop_streams`` cuts its connection.

        G0a has no status; ``chat.status`` is kept for observers only (tests wait on it as on the
        other generations): ``running`` while a reply plays, then ``waiting`` (``error`` after a
        failed one). It never reaches the wire.
        """
        subscriber = Subscriber(chat.id, abort)
        self._streams[chat.id].add(subscriber)
        task = asyncio.create_task(self._play_reply(chat, prompt, output), name=f"coder-sim-reply:{chat.id}")
        self._replies.add(task)
        chat.status = "running"

        def done(finished: asyncio.Task[None]) -> None:
            self._replies.discard(finished)
            self._streams[chat.id].discard(subscriber)
            if not self._streams[chat.id]:
                failed = not finished.cancelled() and chat.last_error is not None
                chat.status = "error" if failed else "waiting"
            self.changes.notify()

        task.add_done_callback(done)
        self.changes.notify()
        return task

    async def _play_reply(self, chat: SimChat, prompt: str, output: DataStreamOutput) -> None:
        try:
            await asyncio.sleep(self._start_delay)
            output.begin_step()
            turn = Turn(output, part_interval=self._part_interval, chunk_words=self._chunk_words)
            failure = await self._play(chat, turn, prompt)
            chat.last_error = None if failure is None else {"message": failure.message}
            output.finish(failure)
        finally:
            output.close()

    # -- sockets -------------------------------------------------------------------------------

    def subscribe_stream(
        self, chat: SimChat, after_id: int, abort: Callable[[], None]
    ) -> tuple[Subscriber, list[JsonDict]]:
        """chatd.Subscribe: the snapshot and the live subscription are taken in one step (4.5).

        The late dialect's snapshot is its stream loop's first sync instead, and the current preview's
        parts follow it as live events (the relay replays the episode from ``seq`` 1).
        """
        subscriber = Subscriber(chat.id, abort)
        if self._dialect.late:
            snapshot = self._late_snapshot(chat, after_id)
            for event in chat.parts:
                subscriber.events.put_nowait(event)
        else:
            snapshot = [status_event(chat)]
            if chat.status == _REQUIRES_ACTION:  # the stream loop follows the status with the calls
                snapshot.append(action_required_event(chat))
            snapshot += chat.parts
            snapshot += [message_event(chat.id, m) for m in chat.messages if m["id"] > after_id]
            if chat.queue:
                snapshot.append(queue_event(chat))
        self._streams[chat.id].add(subscriber)
        self._mark_read(chat)
        return subscriber, snapshot

    @staticmethod
    def _late_snapshot(chat: SimChat, after_id: int) -> list[JsonDict]:
        """stream_loop.go ``applyDBSnapshot`` on a fresh loop (coder/coder 18e18bf9): the messages
        (after ``after_id``; the whole history behind a ``history_reset`` once any was deleted, as
        the loop starts from history version 0), the queue once it ever changed, the status, the
        error of an errored chat, the calls a ``requires_action`` chat waits on, a running chat's
        pending retry, and ``preview_reset`` last."""
        events: list[JsonDict] = []
        if chat.history_version:
            if chat.rewritten:
                events.append(history_reset_event(chat.id))
            events += [
                message_event(chat.id, m) for m in chat.messages if chat.rewritten or m["id"] > after_id
            ]
        if chat.queue_version:
            events.append(queue_event(chat))
        events.append(status_event(chat))
        if chat.status == "error" and chat.last_error is not None:
            events.append(stream_event("error", chat.id, error=chat.last_error))
        if chat.status == _REQUIRES_ACTION:
            events.append(action_required_event(chat))
        if chat.retry_state is not None and chat.status == "running":
            events.append(stream_event("retry", chat.id, retry=chat.retry_state))
        if chat.history_version or chat.generation_attempt:
            events.append(preview_reset_event(chat.id))
        return events

    def unsubscribe_stream(self, chat: SimChat, subscriber: Subscriber) -> None:
        self._streams[chat.id].discard(subscriber)
        self._mark_read(chat)

    def subscribe_watch(self, owner_id: str, abort: Callable[[], None]) -> Subscriber:
        subscriber = Subscriber(owner_id, abort)
        self._watchers[owner_id].add(subscriber)
        self.changes.notify()
        return subscriber

    def unsubscribe_watch(self, subscriber: Subscriber) -> None:
        self._watchers[subscriber.key].discard(subscriber)
        self.changes.notify()

    def drop_streams(self, chat_id: str | None) -> int:
        dropped = 0
        for key, subscribers in self._streams.items():
            if chat_id in (None, key):
                for subscriber in list(subscribers):
                    subscriber.abort()
                    subscribers.discard(subscriber)
                    dropped += 1
        self.changes.notify()
        return dropped

    def silence_sockets(self, chat_id: str | None, *, watches: bool) -> None:
        """Make stream sockets (all, or one chat's) and, if asked, watch sockets go silent."""
        for key, subscribers in self._streams.items():
            if chat_id in (None, key):
                for subscriber in subscribers:
                    subscriber.silence()
        if watches:
            for watchers in self._watchers.values():
                for subscriber in watchers:
                    subscriber.silence()
        self.changes.notify()

    def drop_watches(self) -> None:
        for subscribers in self._watchers.values():
            for subscriber in list(subscribers):
                subscriber.abort()
                subscribers.discard(subscriber)
        self.changes.notify()

    def active_watches(self) -> int:
        return sum(len(subs) for subs in self._watchers.values())

    def active_streams(self, chat_id: str | None) -> int:
        return sum(len(subs) for key, subs in self._streams.items() if chat_id in (None, key))

    async def close(self) -> None:
        """Cancel every turn and wait until each has unwound."""
        self._closed = True
        tasks = [run.task for run in self._runs.values()] + list(self._replies)
        self._runs.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- events --------------------------------------------------------------------------------

    def publish(self, chat: SimChat, event: JsonDict) -> None:
        for subscriber in self._streams.get(chat.id, ()):
            subscriber.events.put_nowait(event)
        self.changes.notify()

    def append(
        self, chat: SimChat, role: str, content: list[JsonDict], created_by: str | None = None
    ) -> JsonDict:
        """Store a message and publish its ``message`` event (and, late, the reset of the preview)."""
        message = self._store(chat, role, content, created_by=created_by)
        self.publish(chat, message_event(chat.id, message))
        if self._dialect.late:
            self._reset_preview(chat)
        return message

    def _store(self, chat: SimChat, role: str, content: list[JsonDict], created_by: str | None) -> JsonDict:
        usage = _usage(content) if role == "assistant" else None
        message = message_json(
            next(self._message_ids), chat, role, content, created_by=created_by, usage=usage
        )
        chat.messages.append(message)
        chat.updated_at = message["created_at"]
        chat.history_version += 1
        return message

    def stream_part(self, chat: SimChat, role: str, body: JsonDict) -> None:
        """Publish (and buffer for snapshots) one ``message_part``; the late dialect numbers it within
        the current preview, starting the next attempt first when the last one is being retried."""
        numbers = None
        if self._dialect.late:
            if chat.retry_state is not None:
                self._start_attempt(chat)
            chat.part_seq += 1
            numbers = (chat.history_version, chat.generation_attempt, chat.part_seq)
        event = part_event(chat.id, role, body, numbers)
        chat.parts.append(event)
        self.publish(chat, event)

    def retry(self, chat: SimChat, payload: JsonDict) -> None:
        """The model call failed and is retried after a backoff. Late, the failed attempt's parts are
        void (the loop drops them once the retry is recorded) and the payload is kept for snapshots
        until the next attempt starts; a retry with none started since means that one failed too."""
        if self._dialect.late:
            if chat.retry_state is not None:
                self._start_attempt(chat)
            chat.retry_state = payload
            chat.parts.clear()
        self.publish(chat, stream_event("retry", chat.id, retry=payload))

    def _start_attempt(self, chat: SimChat) -> None:
        """Late: the worker starts a model call (a turn's first, or a retry): a new generation attempt,
        which the stream loop announces as ``preview_reset``."""
        chat.generation_attempt += 1
        chat.retry_state = None
        self._reset_preview(chat)

    def _reset_preview(self, chat: SimChat) -> None:
        """Late: the history or the attempt changed, so the preview starts over (stream_loop.go)."""
        chat.parts.clear()
        chat.part_seq = 0
        self.publish(chat, preview_reset_event(chat.id))

    def _queue_changed(self, chat: SimChat) -> None:
        chat.queue_version += 1
        self.publish(chat, queue_event(chat))

    def _enqueue(self, chat: SimChat, content: list[JsonDict]) -> JsonDict:
        if len(chat.queue) >= QUEUE_LIMIT:
            raise ApiError(429, "Message queue is full.", f"Maximum {QUEUE_LIMIT} messages can be queued.")
        queued = queued_json(next(self._queued_ids), chat.id, content)
        chat.queue.append(queued)
        self._queue_changed(chat)
        return queued

    def _set_status(
        self, chat: SimChat, status: str, error: JsonDict | None = None, *, watch: str = "status_change"
    ) -> None:
        chat.status = status
        chat.last_error = error
        chat.updated_at = timestamp()
        self.publish(chat, status_event(chat))
        self._watch(chat, watch)

    def _watch(self, chat: SimChat, kind: str) -> None:
        event = watch_event(kind, chat, promoted=self._dialect.promoted)
        for subscriber in self._watchers.get(chat.owner_id, ()):
            subscriber.events.put_nowait(event)
        self.changes.notify()

    def _mark_read(self, chat: SimChat) -> None:
        assistant_ids = [m["id"] for m in chat.messages if m["role"] == "assistant"]
        chat.last_read_id = max(assistant_ids, default=chat.last_read_id)
        self.changes.notify()

    # -- turns ---------------------------------------------------------------------------------

    def _begin(self, chat: SimChat) -> None:
        """Work to do: go busy (G1 ``pending``; G2 ``running``, announced only when it is a change)."""
        queued = self._dialect.queued_status
        if not (self._dialect.promoted and chat.status == queued):
            self._set_status(chat, queued)
        self._start_turn(chat)

    def _start_turn(self, chat: SimChat) -> None:
        self._runs[chat.id] = _Run(
            asyncio.create_task(self._run_turn(chat), name=f"coder-sim-turn:{chat.id}")
        )

    async def _run_turn(self, chat: SimChat) -> None:
        await asyncio.sleep(self._start_delay)
        run = self._runs[chat.id]
        run.turn = Turn(
            _ChatOutput(self, chat),
            part_interval=self._part_interval,
            chunk_words=self._chunk_words,
            retry_restarts=self._dialect.late,
        )
        chat.parts.clear()
        if not self._dialect.promoted:  # G2 is already "running": a worker taking it changes no status
            self._set_status(chat, "running")
        if self._dialect.late:
            self._start_attempt(chat)
        failure = await self._play(chat, run.turn, _latest_prompt(chat))
        del self._runs[chat.id]
        # UNCERTAIN: the snapshot carries parts of the turn "currently being generated" only, so the
        # buffer is emptied when a turn ends as well as when the next one starts.
        chat.parts.clear()
        chat.retry_state = None
        if failure is None:
            self._finish_turn(chat)
            if self._dialect.late:
                self._summarize(chat, run.turn.summary)
        else:
            self._fail_turn(chat, failure)

    async def _play(self, chat: SimChat, turn: Turn, prompt: str) -> Fail | None:
        """Play the script the prompt selects (a sub-agent's chat: the steps it was spawned with);
        the Fail that ended it, or None."""
        steps = self._child_steps.pop(chat.id, None)
        try:
            return await turn.play(steps if steps is not None else self._script_for(prompt)(prompt))
        except Exception as exc:  # a broken script must end like chatd's panic recovery, not hang running
            log.exception("coder sim: script failed for chat %s", chat.id)
            return Fail(f"chat processing panicked: {exc}")

    def _finish_turn(self, chat: SimChat) -> None:
        """End of a normal turn: auto-promote the oldest queued message (FIFO), else go ``waiting``."""
        if not chat.queue:
            self._set_status(chat, "waiting")
            return
        self._promote_head(chat)

    def _summarize(self, chat: SimChat, turn: str) -> None:
        """The late dialect's summary worker, once a turn finished: the turn's summary, then the whole
        chat's, each written and announced on its own (``UpdateChatLastTurnSummary`` and
        ``summary_change``, ``UpdateChatSummary`` and ``chat_summary_change``); neither moves
        ``updated_at``. A summary is the model's words, so a script names it (``Summary``); a turn
        whose script names none is left unsummarized, as when Coder's summary call fails."""
        if not turn:
            return
        chat.last_turn_summary = turn
        self._watch(chat, "summary_change")
        chat.summary = f"{chat.title}: {turn}"
        self._watch(chat, "chat_summary_change")

    def _promote_head(self, chat: SimChat) -> JsonDict:
        """The oldest queued message becomes the next user message and a turn starts; returns it."""
        queued = chat.queue.pop(0)
        message = self.append(chat, "user", queued["content"], created_by=chat.owner_id)
        self._queue_changed(chat)
        self._begin(chat)
        return message

    def _fail_turn(self, chat: SimChat, failure: Fail) -> None:
        """The error event, then status ``error``; the late stream loop sends them the other way round
        (``applyDBSnapshot`` appends the status before the error)."""
        # codersdk.ChatError field order; detail, provider and status_code are omitempty.
        error: JsonDict = {"message": failure.message}
        if failure.detail:
            error["detail"] = failure.detail
        error["kind"] = failure.kind
        if failure.provider:
            error["provider"] = failure.provider
        error["retryable"] = failure.retryable
        if self._dialect.late:
            self._set_status(chat, "error", error=error)
            self.publish(chat, stream_event("error", chat.id, error=error))
            return
        self.publish(chat, stream_event("error", chat.id, error=error))
        self._set_status(chat, "error", error=error)

    async def await_client(self, chat: SimChat, call: JsonDict) -> None:
        """EnterRequiresAction, then wait until a client resolves ``call`` (see ``ClientToolCall``).

        The call's generation is over, so its buffered parts go (a snapshot replays none of them).
        Entering is announced to watchers as ``action_required`` alone, not as a ``status_change``
        (chatd's worker enterRequiresAction). Past the deadline the worker cancels the call
        (CancelRequiresAction) and the model goes on.
        """
        if not self._dialect.promoted:
            raise RuntimeError(f"Coder {self._dialect.generation} has no requires_action status")
        answered = self._runs[chat.id].answered = asyncio.Event()
        chat.parts.clear()
        chat.pending_calls = [call]
        self._set_status(chat, _REQUIRES_ACTION, watch="action_required")
        self.publish(chat, action_required_event(chat))
        try:
            async with asyncio.timeout(self.action_timeout):
                await answered.wait()
        except TimeoutError:
            self._cancel_calls(chat, _TIMED_OUT)
            self._resume(chat)

    def _cancel_calls(self, chat: SimChat, reason: str) -> None:
        """Answer every pending client tool call with chatd's synthetic cancellation: a ``tool``
        message whose error result is the reason (chatstate synthesizePendingToolCancellations)."""
        calls, chat.pending_calls = chat.pending_calls, []
        for call in calls:
            ids = {"tool_call_id": call["tool_call_id"], "tool_name": call["tool_name"]}
            self.append(chat, "tool", [part("tool-result", **ids, result=reason, is_error=True)])

    def _resume(self, chat: SimChat) -> None:
        """Leave ``requires_action``: ``running`` again, and the parked turn goes on."""
        self._set_status(chat, "running")
        run = self._runs.get(chat.id)
        if run is not None and run.answered is not None:
            run.answered.set()

    def _stop_turn(self, chat: SimChat, *, keep_draft: bool) -> None:
        """Cancel the chat's turn, if any, persisting its streamed-but-unsaved reply when asked."""
        chat.pending_calls = []  # an edit deletes the message that made them
        chat.retry_state = None
        run = self._runs.pop(chat.id, None)
        if run is None:
            return
        run.task.cancel()
        chat.parts.clear()
        draft = run.turn.draft_content() if run.turn is not None else []
        if keep_draft and draft:
            self.append(chat, "assistant", draft)

    def _script_for(self, prompt: str) -> Script:
        """The script of the first ``scripts`` prefix the prompt starts with, else ``agent``."""
        lowered = prompt.strip().lower()
        return next(
            (s for prefix, s in self.scripts.items() if lowered.startswith(prefix.lower())), self.agent
        )


def _latest_prompt(chat: SimChat) -> str:
    latest = next((m for m in reversed(chat.messages) if m["role"] == "user"), None)
    parts = latest.get("content", []) if latest is not None else []
    return " ".join(p["text"] for p in parts if p["type"] == "text")


def _usage(content: list[JsonDict]) -> JsonDict:
    """Plausible token counts, so clients meet ``usage`` on assistant messages as on a real server."""
    output = sum(len(p["text"].split()) for p in content) + 20 * sum(
        p["type"] == "tool-call" for p in content
    )
    return {
        "input_tokens": _INPUT_TOKENS,
        "output_tokens": output,
        "total_tokens": _INPUT_TOKENS + output,
        "context_limit": _CONTEXT_LIMIT,
    }


def _describe(predicate: Callable[[], bool]) -> str:
    code = getattr(predicate, "__code__", None)
    where = f" ({code.co_filename}:{code.co_firstlineno})" if code is not None else ""
    return f"{getattr(predicate, '__qualname__', repr(predicate))}{where}"
