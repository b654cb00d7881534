"""The G0a backend: Coder's 2025 AI-SDK chat API on ``/api/v2/chats`` (reference section 6).

G0a has six routes (list, create, get, delete chats; list and post messages) and nothing else: no
status, labels, queue, interrupt, archive, files or stream socket. ``POST /messages`` answers with
the reply itself, streamed as a Vercel AI SDK data stream. This backend presents it through the
same ``CoderBackend`` interface as the others by keeping, **in this process's memory only**:

- each chat's labels (G0a has none), so ``list_chats(labels=…)`` finds chats this process created;
- a synthesized status: ``running`` while a reply streams here, else ``waiting`` (``error`` after a
  failed reply);
- a queue of follow-ups sent while a reply streams, posted in order when it ends (the relay may later
  make it durable);
- uploaded files, sent inline as aisdk ``file`` parts when a message references them.

Each reply is read by a background task that publishes normalized events to ``stream()``
subscribers. Message ids are positions (1-based) in the chat's message list, so ``after_id`` means
"how many messages I have seen"; this holds as long as only this process posts to its chats.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from bridge.coder.aisdk_wire import (
    FAILED,
    IDLE,
    RUNNING,
    DataStreamDecoder,
    ReplyAccumulator,
    parse_chat,
    parse_messages,
    user_message,
)
from bridge.coder.errors import CoderError, CoderRejected, CoderUnavailable
from bridge.coder.experimental_wire import decode
from bridge.coder.observe import NOOP_OBSERVER, CoderObserver
from bridge.coder.rest import (
    DEFAULT_RETRY,
    DEFAULT_TIMEOUT,
    TOKEN_HEADER,
    RestClient,
    RetryPolicy,
    error_from_response,
    read_json,
)
from bridge.coder.stream import DEFAULT_RECONNECT, ReconnectPolicy
from bridge.coder.types import (
    IMAGE_TYPES,
    Chat,
    ChatId,
    ChatStatus,
    CoderUser,
    ConnectedEvent,
    ErrorEvent,
    InputPart,
    Message,
    MessageEvent,
    Part,
    QueuedMessage,
    QueueEvent,
    SendResult,
    StatusEvent,
    StreamEvent,
)
from bridge.coder.users import fetch_me

log = logging.getLogger(__name__)

CHATS = "/api/v2/chats"
LLMS = "/api/v2/deployment/llms"
FALLBACK_MODEL = "claude-3-7-sonnet-latest"
"""The model of the reference's examples, used when no model is configured and the server lists none."""

Batch = list[StreamEvent]


@dataclass
class _Queued:
    message: QueuedMessage
    content: tuple[InputPart, ...]


@dataclass
class _ChatState:
    """What this process knows about one chat beyond what G0a stores."""

    labels: dict[str, str] = field(default_factory=dict)
    created: bool = False
    reply: asyncio.Task[None] | None = None
    queue: list[_Queued] = field(default_factory=list)
    subscribers: set[asyncio.Queue[Batch | None]] = field(default_factory=set)
    last_error: str | None = None

    @property
    def busy(self) -> bool:
        return self.reply is not None and not self.reply.done()

    @property
    def status(self) -> ChatStatus:
        if self.busy:
            return RUNNING
        return FAILED if self.last_error else IDLE

    def queue_event(self) -> QueueEvent:
        return QueueEvent(queue=tuple(q.message for q in self.queue))

    def publish(self, batch: Batch) -> None:
        for inbox in self.subscribers:
            inbox.put_nowait(batch)


def _text(content: Sequence[InputPart]) -> str:
    return "\n".join(p.text for p in content if p.type == "text" and p.text)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class AiSdkBackend:
    """``CoderBackend`` for G0a (``/api/v2/chats`` of 2025); generation name ``v2-legacy``.

    ``model`` is the ``model`` key sent with every message (G0a answers 400 "Model not found" for
    one the deployment lacks). When ``None`` it is looked up once: the first entry of
    ``GET /api/v2/deployment/llms`` (the route the 2025 web UI's model picker read; UNCERTAIN on
    every build), else ``FALLBACK_MODEL``. ``organization_id`` and ``reconnect`` are accepted for
    interface parity and unused: G0a chats belong to no organization and there is no socket.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        organization_id: str | None = None,
        model: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        ssl_context: ssl.SSLContext | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        reconnect: ReconnectPolicy = DEFAULT_RECONNECT,
        observer: CoderObserver = NOOP_OBSERVER,
    ) -> None:
        self._rest = RestClient(
            base_url, token, timeout=timeout, ssl_context=ssl_context, retry=retry, observer=observer
        )
        # Replies stream for as long as the agent works, so reads have no timeout here.
        self._streaming = httpx.AsyncClient(
            base_url=self._rest.base_url,
            headers={TOKEN_HEADER: token},
            timeout=httpx.Timeout(timeout, read=None),
            verify=ssl_context if ssl_context is not None else True,
        )
        self._model = model
        self._observer = observer
        self._chats: dict[ChatId, _ChatState] = {}
        self._files: dict[str, tuple[str, bytes]] = {}
        self._queued_ids = itertools.count(1)

    @property
    def generation(self) -> str:
        """``v2-legacy``: the 2025 AI-SDK chat API."""
        return "v2-legacy"

    @property
    def base_url(self) -> str:
        """The deployment URL without a trailing slash."""
        return self._rest.base_url

    def chat_url(self, chat_id: ChatId) -> str:
        """``/chat/{id}``: the 2025 web UI opened a new chat there (site ChatPage/ChatLanding.tsx)."""
        return f"{self.base_url}/chat/{quote(chat_id, safe='')}"

    @property
    def accepted_media_types(self) -> frozenset[str]:
        """Images: the only ``file`` parts reference section 6 shows G0a taking (inline, base64)."""
        return IMAGE_TYPES

    def _path(self, chat_id: str, *rest: str) -> str:
        return "/".join((CHATS, quote(chat_id, safe=""), *rest))

    def _state(self, chat_id: ChatId) -> _ChatState:
        return self._chats.setdefault(chat_id, _ChatState())

    async def whoami(self) -> CoderUser:
        """``GET /api/v2/users/me``."""
        return await fetch_me(self._rest)

    async def create_chat(
        self,
        content: Sequence[InputPart],
        *,
        labels: Mapping[str, str],
        organization_id: str | None = None,
    ) -> Chat:
        """``POST /chats`` (no body), then the first message; ``labels`` are kept in memory only."""
        response = await self._rest.call("create_chat", "POST", CHATS, idempotent=False)
        chat = decode(read_json(response), parse_chat, "chat")
        state = self._state(chat.id)
        state.labels, state.created = dict(labels), True
        await self.send_message(chat.id, content)
        return chat.model_copy(update={"status": state.status, "labels": dict(state.labels)})

    def _chat(self, raw: Any, state: _ChatState) -> Chat:
        return decode(
            raw,
            lambda body: parse_chat(
                body, status=state.status, labels=state.labels, last_error=state.last_error
            ),
            "chat",
        )

    async def send_message(self, chat_id: ChatId, content: Sequence[InputPart]) -> SendResult:
        """Post now, or queue behind the reply that is streaming (or the queue already waiting).

        A 4xx/5xx before the reply starts raises; the reply itself streams in a background task.
        """
        state = self._state(chat_id)
        if state.busy or state.queue:
            queued = QueuedMessage(
                id=next(self._queued_ids),
                content=tuple(Part(type=p.type, text=p.text, file_id=p.file_id) for p in content),
                created_at=datetime.now(UTC),
            )
            state.queue.append(_Queued(queued, tuple(content)))
            state.publish([state.queue_event()])
            if not state.busy:  # queue held after an interrupt: start draining it
                await self._start(chat_id, state, state.queue.pop(0), announce=True)
            return SendResult(queued=True, queued_message=queued)
        message = await self._start(chat_id, state, None, content=content)
        return SendResult(queued=False, message=message)

    async def _start(
        self,
        chat_id: ChatId,
        state: _ChatState,
        queued: _Queued | None,
        *,
        content: Sequence[InputPart] = (),
        announce: bool = False,
    ) -> Message:
        """Post one user message and hand its streaming reply to a new background task."""
        if queued is not None:
            content = queued.content
            if announce:
                state.publish([state.queue_event()])
        try:
            response, message = await self._post(chat_id, content)
        except BaseException:
            if queued is not None:  # not sent: it stays first in line
                state.queue.insert(0, queued)
                state.publish([state.queue_event()])
            raise
        state.last_error = None
        state.reply = asyncio.create_task(
            self._reply(chat_id, state, response, message), name=f"aisdk-{chat_id}"
        )
        return message

    async def _post(self, chat_id: ChatId, content: Sequence[InputPart]) -> tuple[httpx.Response, Message]:
        """``POST /chats/{id}/messages``; returns the open streaming response and the user message."""
        count = len(await self._raw_messages(chat_id))
        files = [self._inline(p.file_id) for p in content if p.type == "file"]
        body = {
            "model": await self._model_key(),
            "message": user_message(f"msg-{uuid.uuid4()}", _now(), _text(content), files),
        }
        request = self._streaming.build_request("POST", self._path(chat_id, "messages"), json=body)
        started, outcome = time.monotonic(), CoderUnavailable.__name__
        try:
            response = await self._streaming.send(request, stream=True)
            if not response.is_success:
                await response.aread()
                await response.aclose()
                error = error_from_response(response.status_code, response.content, response.reason_phrase)
                outcome = type(error).__name__
                raise error
            outcome = "ok"
        except httpx.TransportError as exc:
            raise CoderUnavailable(f"Could not reach Coder at {self.base_url}", detail=str(exc)) from exc
        finally:
            self._observer.call_finished("send_message", outcome, time.monotonic() - started)
        parts = [Part(type="text", text=t) for t in [_text(content)] if t]
        parts += [
            Part(type="file", file_id=p.file_id, media_type=self._files[p.file_id][0])
            for p in content
            if p.type == "file"
        ]
        return response, Message(
            id=count + 1, role="user", content=tuple(parts), created_at=datetime.now(UTC)
        )

    def _inline(self, file_id: str) -> tuple[str, str]:
        if file_id not in self._files:
            raise CoderRejected(f"Unknown file {file_id!r}: upload it with this backend first", status=400)
        media_type, data = self._files[file_id]
        return media_type, base64.b64encode(data).decode("ascii")

    async def _model_key(self) -> str:
        if self._model is None:
            self._model = FALLBACK_MODEL
            try:
                response = await self._rest.call("list_models", "GET", LLMS, idempotent=True)
                models = read_json(response).get("models") or []
                self._model = str(models[0]["id"]) if models else FALLBACK_MODEL
            except (CoderError, AttributeError, KeyError, TypeError):
                log.info("no model list at %s; using %s", LLMS, FALLBACK_MODEL)
        return self._model

    async def _reply(
        self, chat_id: ChatId, state: _ChatState, response: httpx.Response, user: Message
    ) -> None:
        """Read replies until the queue is empty; each ends with a status event."""
        state.publish([StatusEvent(status=RUNNING), MessageEvent(message=user)])
        while True:
            error = await self._read(state, response, user.id + 1)
            state.last_error = error
            if not state.queue:
                break
            queued = state.queue.pop(0)
            state.publish([state.queue_event()])
            try:
                response, user = await self._post(chat_id, queued.content)
            except asyncio.CancelledError:
                state.queue.insert(0, queued)
                raise
            except CoderError as exc:
                state.last_error = str(exc)
                state.publish([ErrorEvent(message=str(exc))])
                continue
            state.publish([MessageEvent(message=user)])
        state.reply = None
        state.publish([StatusEvent(status=state.status)])

    async def _read(self, state: _ChatState, response: httpx.Response, next_id: int) -> str | None:
        """Publish one reply's events as they arrive; the error text if it failed."""
        decoder = DataStreamDecoder(response.headers.get("content-type", ""))
        accumulator = ReplyAccumulator(next_id)
        try:
            async for line in response.aiter_lines():
                events = accumulator.feed(decoder.feed(line))
                if events:
                    state.publish(events)
            events = accumulator.feed(decoder.close())
            if events:
                state.publish(events)
        except httpx.HTTPError as exc:
            message = f"The reply from Coder broke off: {exc or type(exc).__name__}"
            state.publish([ErrorEvent(message=message, retryable=True)])
            return message
        finally:
            await response.aclose()
        if accumulator.errors:
            return accumulator.errors[-1]
        if not accumulator.finished:  # a v1 body that a failed model call cut short has no d: line
            message = "Coder's reply ended before the model finished"
            state.publish([ErrorEvent(message=message)])
            return message
        return None

    async def get_chat(self, chat_id: ChatId) -> Chat:
        """``GET /chats/{id}`` with the synthesized status and remembered labels."""
        response = await self._rest.call("get_chat", "GET", self._path(chat_id), idempotent=True)
        return self._chat(read_json(response), self._state(chat_id))

    async def list_chats(self, *, labels: Mapping[str, str] | None = None) -> list[Chat]:
        """``GET /chats``; with ``labels``, only chats this process created with all of them."""
        response = await self._rest.call("list_chats", "GET", CHATS, idempotent=True)
        raw = read_json(response)
        if not isinstance(raw, list):
            raise CoderError("Coder sent a chat list that is not a list", status=response.status_code)
        chats = [self._chat(item, self._chats.get(ChatId(str(item.get("id"))), _ChatState())) for item in raw]
        if labels:
            chats = [c for c in chats if all(c.labels.get(k) == v for k, v in labels.items())]
        return chats

    async def _raw_messages(self, chat_id: ChatId) -> list[Any]:
        response = await self._rest.call(
            "recent_messages", "GET", self._path(chat_id, "messages"), idempotent=True
        )
        raw = read_json(response)
        if not isinstance(raw, list):
            raise CoderError("Coder sent a message list that is not a list", status=response.status_code)
        return raw

    async def _messages(self, chat_id: ChatId) -> list[Message]:
        raw = await self._raw_messages(chat_id)
        return decode(raw, parse_messages, "message list")

    async def recent_messages(self, chat_id: ChatId, *, limit: int = 50) -> list[Message]:
        """The last ``limit`` messages of ``GET /chats/{id}/messages`` (which has no paging)."""
        messages = await self._messages(chat_id)
        return messages[-max(limit, 1) :]

    async def interrupt(self, chat_id: ChatId) -> Chat:
        """Close the streaming reply (G0a's only way to stop; coderd drops the partial step).

        Queued follow-ups stay queued until the next ``send_message`` or ``promote_queued``.
        """
        state = self._state(chat_id)
        await self._cancel(state)
        return await self.get_chat(chat_id)

    async def _cancel(self, state: _ChatState) -> None:
        task = state.reply
        if task is None or task.done():
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        state.reply = None
        state.publish([StatusEvent(status=state.status)])

    async def set_archived(self, chat_id: ChatId, archived: bool) -> None:
        """G0a has no archive: always ``CoderRejected``."""
        raise CoderRejected("This Coder version's chat API cannot archive chats", status=405)

    async def promote_queued(self, chat_id: ChatId, queued_id: int) -> Message:
        """Send a queued follow-up now: the streaming reply (if any) is interrupted first.

        Returns the user message as it will be stored, with its positional id.
        """
        state = self._state(chat_id)
        found = next((q for q in state.queue if q.message.id == queued_id), None)
        if found is None:
            raise CoderRejected(f"Queued message {queued_id} is not queued in this chat", status=404)
        await self._cancel(state)
        state.queue.remove(found)
        return await self._start(chat_id, state, found, announce=True)

    async def edit_message(self, chat_id: ChatId, message_id: int, content: Sequence[InputPart]) -> Message:
        """G0a has no message edit: always ``CoderRejected``."""
        raise CoderRejected("This Coder version's chat API cannot edit messages", status=405)

    async def queued_messages(self, chat_id: ChatId) -> list[QueuedMessage]:
        """The follow-ups this process holds for the chat."""
        return [q.message for q in self._state(chat_id).queue]

    async def delete_queued(self, chat_id: ChatId, queued_id: int) -> None:
        """Drop a follow-up this process holds (nothing if it was already sent)."""
        state = self._state(chat_id)
        kept = [q for q in state.queue if q.message.id != queued_id]
        if len(kept) != len(state.queue):
            state.queue = kept
            state.publish([state.queue_event()])

    async def upload_file(self, organization_id: str, data: bytes, media_type: str, filename: str) -> str:
        """Kept in memory and sent inline (aisdk ``file`` part, base64) by the message using it."""
        file_id = str(uuid.uuid4())
        self._files[file_id] = (media_type, data)
        return file_id

    def watch(self) -> None:
        """G0a has no watch socket: chats change only through this process."""
        return None

    async def get_diff(self, chat_id: ChatId) -> None:
        """G0a tracks no diffs or pull requests."""
        return None

    def stream(self, chat_id: ChatId, *, after_id: int | None = None) -> AiSdkStream:
        """A snapshot (status, stored messages after ``after_id``, queue), then this process's live events."""
        return AiSdkStream(self, chat_id, after_id)

    async def _snapshot(self, chat_id: ChatId, state: _ChatState, after_id: int | None) -> Batch:
        messages = await self._messages(chat_id)
        batch: Batch = [StatusEvent(status=state.status)]
        batch += [MessageEvent(message=m) for m in messages if after_id is None or m.id > after_id]
        if state.queue:
            batch.append(state.queue_event())
        return batch

    async def aclose(self) -> None:
        """Cancel every streaming reply, end every stream, close the connection pools."""
        for state in self._chats.values():
            if state.reply is not None:
                state.reply.cancel()
        tasks = [s.reply for s in self._chats.values() if s.reply is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        for state in self._chats.values():
            for inbox in state.subscribers:
                inbox.put_nowait(None)
        await self._streaming.aclose()
        await self._rest.aclose()


class AiSdkStream:
    """One subscriber of a chat's events; the ``ChatStream`` of the G0a backend.

    Live ``MessageEvent``s at or below the highest id already delivered are dropped, so the
    snapshot and the live events never repeat a message.
    """

    def __init__(self, backend: AiSdkBackend, chat_id: ChatId, after_id: int | None) -> None:
        self._backend = backend
        self._chat_id = chat_id
        self._after_id = after_id
        self._state = backend._state(chat_id)
        self._inbox: asyncio.Queue[Batch | None] = asyncio.Queue()
        self._closed = False
        self._batches: AsyncIterator[Batch] | None = None

    def __aiter__(self) -> AsyncIterator[Batch]:
        """The one iterator of this stream: iterating again continues where the last loop stopped."""
        if self._batches is None:
            self._batches = self._run()
        return self._batches

    async def _run(self) -> AsyncIterator[Batch]:
        if self._closed:
            return
        self._state.subscribers.add(self._inbox)
        try:
            yield [ConnectedEvent(after_id=self._after_id)]
            snapshot = await self._backend._snapshot(self._chat_id, self._state, self._after_id)
            seen = max(
                (e.message.id for e in snapshot if isinstance(e, MessageEvent)), default=self._after_id or 0
            )
            yield snapshot
            while (batch := await self._inbox.get()) is not None:
                fresh: Batch = []
                for event in batch:
                    if isinstance(event, MessageEvent):
                        if event.message.id <= seen:
                            continue
                        seen = event.message.id
                    fresh.append(event)
                if fresh:
                    yield fresh
        finally:
            self._state.subscribers.discard(self._inbox)

    async def aclose(self) -> None:
        """Unsubscribe; an iteration under way ends after its current batch."""
        self._closed = True
        self._state.subscribers.discard(self._inbox)
        self._inbox.put_nowait(None)
