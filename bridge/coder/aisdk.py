"""The backend of Coder's 2025 AI-SDK chat API (G0a) on ``/api/v2/chats`` (reference section 6).

It has six routes (list, create, get, delete chats; list and post messages) and nothing else: no
status, labels, queue, interrupt, archive, files or stream socket. ``POST /messages`` answers with
the reply itself, streamed as a Vercel AI SDK data stream, and coderd ends the reply when that
request goes away. This backend presents it through the same ``CoderBackend`` interface:

- labels, the follow-ups held while a reply streams and "a reply was streaming" live in an
  ``AiSdkStore`` (the bridge's database; see ``aisdk_store``), so they survive a restart;
- the status is synthesized: ``running`` while a reply streams here, else ``waiting`` (``error``
  after a failed reply);
- interrupt closes the reply's request; archive is refused, or deletes the chat when the operator
  opted in (``AiSdkOptions.archive_deletes``);
- the model sent with every message is checked once against the server's list (``prepare``);
- uploaded files are kept in memory and sent inline as aisdk ``file`` parts.

Each reply is read by a background task that publishes normalized events to ``stream()``
subscribers. The Coder client stands alone, so whoever builds the backend hands in how to start
that task (``spawn``: the bridge passes ``bridge.tasks.TaskGroup.spawn``, which names, keeps and
watches it); the backend still cancels its replies itself on ``aclose``. Message ids are
positions (1-based) in the chat's message list, so ``after_id`` means "how many messages I have
seen"; this holds as long as only this bridge posts to its chats.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from bridge.coder.aisdk_store import AiSdkStore, MemoryAiSdkStore
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
from bridge.coder.errors import (
    CoderError,
    CoderModelUnknown,
    CoderNotFound,
    CoderRejected,
    CoderUnavailable,
)
from bridge.coder.experimental_wire import decode
from bridge.coder.facts import server_version
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
    NO_OPTIONS,
    BackendNotice,
    Capabilities,
    Chat,
    ChatId,
    ChatOption,
    ChatOptions,
    ChatStatus,
    Choice,
    CoderUser,
    ConnectedEvent,
    EditResult,
    ErrorEvent,
    InputPart,
    Message,
    MessageEvent,
    Part,
    PartEvent,
    QueuedMessage,
    QueueEvent,
    SendResult,
    ServerFacts,
    StatusEvent,
    StreamEvent,
    ToolResult,
)
from bridge.coder.users import fetch_me

log = logging.getLogger(__name__)

CHATS = "/api/v2/chats"
LLMS = "/api/v2/deployment/llms"
FALLBACK_MODEL = "claude-3-7-sonnet-latest"
"""The model of the reference's examples, used when none is configured and the server lists none."""

Batch = list[StreamEvent]


@dataclass(frozen=True)
class AiSdkOptions:
    """What only this generation needs: the model, durable memory, and the archive opt-in.

    ``model`` is the ``model`` key sent with every message (``None``: the server's first);
    ``store`` keeps labels and held follow-ups (``None``: this process's memory only);
    ``archive_deletes`` makes archiving delete the chat, as that API cannot archive.
    """

    model: str | None = None
    store: AiSdkStore | None = None
    archive_deletes: bool = False


DEFAULT_OPTIONS = AiSdkOptions()

Spawn = Callable[[str, Coroutine[Any, Any, None]], "asyncio.Task[Any]"]
"""Starts a named background task (in the bridge: ``bridge.tasks.TaskGroup.spawn``)."""


@dataclass
class _ChatState:
    """This process's live view of one chat: the reply streaming here and who listens to it.

    ``lock`` serializes the decisions "send now or hold" and "the reply ended: send the next held
    follow-up", so a follow-up is never held after the reply already looked for the next one.
    """

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    reply: asyncio.Task[Any] | None = None
    subscribers: set[asyncio.Queue[Batch | None]] = field(default_factory=set)
    last_error: str | None = None
    deltas: Batch = field(default_factory=list)
    """The running turn's deltas so far, for a subscriber's snapshot (as Coder's own snapshot has)."""

    @property
    def busy(self) -> bool:
        return self.reply is not None and not self.reply.done()

    @property
    def status(self) -> ChatStatus:
        if self.busy:
            return RUNNING
        return FAILED if self.last_error else IDLE

    def publish(self, batch: Batch) -> None:
        self.deltas += [e for e in batch if isinstance(e, PartEvent)]
        for inbox in self.subscribers:
            inbox.put_nowait(batch)

    def begin_turn(self, user: Message) -> None:
        """A user message went out: its reply's deltas start afresh."""
        self.deltas = []
        self.publish([MessageEvent(message=user), StatusEvent(status=RUNNING)])  # Coder's order


def _text(content: Sequence[InputPart]) -> str:
    return "\n".join(p.text for p in content if p.type == "text" and p.text)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _model_ids(body: Any) -> list[str]:
    """``LanguageModelConfig``: ``{"models": [{"id", "display_name", "provider"}]}``."""
    models = body.get("models") if isinstance(body, dict) else None
    if not isinstance(models, list):
        raise CoderError("Coder sent a model list this bridge does not recognise")
    return [str(m["id"]) for m in models if isinstance(m, dict) and m.get("id")]


class AiSdkBackend:
    """``CoderBackend`` for the 2025 AI-SDK API (``/api/v2/chats``); generation name ``v2-legacy``.

    ``organization_id`` and ``reconnect`` are accepted for interface parity and unused: its chats
    belong to no organization and there is no socket to reconnect.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        spawn: Spawn,
        options: AiSdkOptions = DEFAULT_OPTIONS,
        organization_id: str | None = None,
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
        self._spawn = spawn
        self._model = options.model
        self._store: AiSdkStore = options.store if options.store is not None else MemoryAiSdkStore()
        self._archive_deletes = options.archive_deletes
        self._observer = observer
        self._chats: dict[ChatId, _ChatState] = {}
        self._files: dict[str, tuple[str, bytes]] = {}

    @property
    def generation(self) -> str:
        """``v2-legacy``: the 2025 AI-SDK chat API."""
        return "v2-legacy"

    @property
    def capabilities(self) -> Capabilities:
        """The bridge keeps labels and the queue; a reply ends with the bridge's connection."""
        return Capabilities(
            labels=False,
            queue="bridge",
            archive="delete" if self._archive_deletes else "refuse",
            failure_reasons=False,
            replies_outlive_connection=False,
            edits=False,
            stored_files=False,
            watch=False,
            retry_events=False,
            options=frozenset(),
            rename="bridge",
        )

    @property
    def model(self) -> str | None:
        """The model every message asks for (known once ``prepare`` ran or a message was sent)."""
        return self._model

    @property
    def base_url(self) -> str:
        """The deployment URL without a trailing slash."""
        return self._rest.base_url

    def chat_url(self, chat_id: ChatId) -> str:
        """``/chat/{id}``: the 2025 web UI opened a chat there (site ChatPage/ChatLanding.tsx)."""
        return f"{self.base_url}/chat/{quote(chat_id, safe='')}"

    @property
    def accepted_media_types(self) -> frozenset[str]:
        """Images: the only ``file`` parts reference section 6 shows the 2025 AI-SDK API taking (inline,
        base64)."""
        return IMAGE_TYPES

    def _path(self, chat_id: str, *rest: str) -> str:
        return "/".join((CHATS, quote(chat_id, safe=""), *rest))

    def _state(self, chat_id: ChatId) -> _ChatState:
        return self._chats.setdefault(chat_id, _ChatState())

    async def prepare(self) -> str:
        """Settle the model once, at start: the configured one must be in the server's list.

        ``GET /api/v2/deployment/llms`` (the 2025 web UI's model picker; UNCERTAIN on every build)
        lists the models. Without a configured model the first listed is used; a build without the
        route keeps the configured model (or ``FALLBACK_MODEL``) unchecked, and the first message
        then meets Coder's own 400 "Model not found" if it is wrong.
        Raises ``CoderModelUnknown`` naming the valid models.
        """
        try:
            response = await self._rest.call("list_models", "GET", LLMS, idempotent=True)
            models = _model_ids(read_json(response))
        except CoderNotFound:
            models = []
        if not models:
            log.warning(
                "Coder lists no models at %s; sending %s unchecked", LLMS, self._model or FALLBACK_MODEL
            )
            self._model = self._model or FALLBACK_MODEL
        elif self._model is None:
            self._model = models[0]
        elif self._model not in models:
            raise CoderModelUnknown(
                f"Model {self._model!r} is not one Coder at {self.base_url} offers",
                detail="valid: " + ", ".join(models),
                status=400,
            )
        return self._model

    async def whoami(self) -> CoderUser:
        """``GET /api/v2/users/me``."""
        return await fetch_me(self._rest)

    async def create_chat(
        self,
        content: Sequence[InputPart],
        *,
        labels: Mapping[str, str],
        organization_id: str | None = None,
        options: ChatOptions = NO_OPTIONS,
    ) -> Chat:
        """``POST /chats`` (no body), then the first message. Its chats take no options
        (``capabilities.options`` is empty, so the relay refuses them before asking).

        The labels are stored before the first message goes out, so a creation a crash cut short
        is found here again by them and finished: its first message is sent unless Coder has it.
        """
        pending = [c for c in await self._store.find_chats(labels) if not c.started] if labels else []
        if pending:
            chat_id = pending[0].chat_id
            log.info("finishing chat %s, created before a stop", chat_id, extra={"chat_id": chat_id})
            raw = read_json(await self._rest.call("get_chat", "GET", self._path(chat_id), idempotent=True))
            if await self._raw_messages(chat_id):  # the first message reached Coder before the stop
                await self._store.mark_started(chat_id)
                return await self._chat(raw)
        else:
            raw = read_json(await self._rest.call("create_chat", "POST", CHATS, idempotent=False))
            chat_id = decode(raw, parse_chat, "chat").id
            await self._store.remember_chat(chat_id, labels)
        await self.send_message(chat_id, content)
        await self._store.mark_started(chat_id)
        return await self._chat(raw)

    async def choices(self, option: ChatOption) -> list[Choice]:
        """None: the 2025 AI-SDK API's chats have no per-chat model config, workspace or MCP servers."""
        return []

    async def _chat(self, raw: Any) -> Chat:
        """A chat of the 2025 AI-SDK API with the synthesized status and the labels the store remembers."""
        chat_id = ChatId(str(raw.get("id") if isinstance(raw, dict) else ""))
        state = self._state(chat_id)
        stored = await self._store.get_chat(chat_id)
        labels = dict(stored.labels) if stored is not None else {}
        return decode(
            raw,
            lambda body: parse_chat(body, status=state.status, labels=labels, last_error=state.last_error),
            "chat",
        )

    async def send_message(
        self,
        chat_id: ChatId,
        content: Sequence[InputPart],
        *,
        resume: bool = False,
        leave_plan_mode: bool = False,
    ) -> SendResult:
        """Post now, or hold it behind the reply that is streaming (or the follow-ups already held).
        ``resume`` and ``leave_plan_mode`` change nothing: this API's agent never waits for its person
        and has no plan mode.

        A 4xx/5xx before the reply starts raises; the reply itself streams in a background task.
        """
        state = self._state(chat_id)
        async with state.lock:
            if state.busy or await self._store.held(chat_id):
                held = await self._store.hold(chat_id, content)
                await self._publish_queue(chat_id, state)
                if not state.busy:  # held after an interrupt: the oldest goes now
                    try:
                        await self._send_next(chat_id, state)
                    except CoderError as exc:  # this one is held all the same: nothing is lost
                        log.warning("sending a held follow-up to chat %s failed: %s", chat_id, exc)
                        state.publish([ErrorEvent(message=str(exc), notice=BackendNotice.FOLLOW_UP_UNSENT)])
                return SendResult(queued=True, queued_message=held.queued())
            message = await self._start(chat_id, state, content)
        return SendResult(queued=False, message=message)

    async def _post_held(self, chat_id: ChatId, state: _ChatState) -> tuple[httpx.Response, Message] | None:
        """Post the oldest held follow-up (under ``state.lock``); it is released once Coder has it.

        One that Coder refuses for good (4xx, e.g. a file lost with the last process) is released
        too, and the thread told, so it cannot block those behind it; while Coder cannot be reached
        this raises and the follow-up stays held.
        """
        for held in await self._store.held(chat_id):
            try:
                posted: tuple[httpx.Response, Message] | None = await self._post(chat_id, held.content)
            except CoderRejected as exc:
                posted = None
                state.publish([ErrorEvent(message=str(exc), notice=BackendNotice.FOLLOW_UP_REFUSED)])
            await self._store.release(chat_id, held.id)
            await self._publish_queue(chat_id, state)
            if posted is not None:
                return posted
        return None

    async def _send_next(self, chat_id: ChatId, state: _ChatState) -> Message | None:
        """Send the oldest held follow-up and follow its reply (under ``state.lock``)."""
        posted = await self._post_held(chat_id, state)
        if posted is None:
            return None
        return await self._follow_reply(chat_id, state, *posted)

    async def _publish_queue(self, chat_id: ChatId, state: _ChatState) -> None:
        if state.subscribers:
            held = await self._store.held(chat_id)
            state.publish([QueueEvent(queue=tuple(h.queued() for h in held))])

    async def _start(self, chat_id: ChatId, state: _ChatState, content: Sequence[InputPart]) -> Message:
        """Post one user message and follow its reply."""
        return await self._follow_reply(chat_id, state, *await self._post(chat_id, content))

    async def _follow_reply(
        self, chat_id: ChatId, state: _ChatState, response: httpx.Response, message: Message
    ) -> Message:
        """Hand a reply that started streaming to a new background task; returns its user message."""
        state.last_error = None
        await self._store.set_replying(chat_id, True)
        state.reply = self._spawn(f"aisdk-reply:{chat_id}", self._reply(chat_id, state, response, message))
        return message

    async def _post(self, chat_id: ChatId, content: Sequence[InputPart]) -> tuple[httpx.Response, Message]:
        """``POST /chats/{id}/messages``; returns the open streaming response and the user message."""
        count = len(await self._raw_messages(chat_id))
        files = [self._inline(p.file_id) for p in content if p.type == "file"]
        body = {
            "model": self._model or await self.prepare(),
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

    async def _reply(
        self, chat_id: ChatId, state: _ChatState, response: httpx.Response, user: Message
    ) -> None:
        """Read replies until no follow-up is held; each reply ends with a status event."""
        state.begin_turn(user)
        while True:
            state.last_error = await self._read(state, response, user.id + 1)
            async with state.lock:
                try:
                    posted = await self._post_held(chat_id, state)
                except CoderError as exc:
                    state.last_error = str(exc)
                    state.publish([ErrorEvent(message=str(exc), notice=BackendNotice.FOLLOW_UP_UNSENT)])
                    posted = None
                if posted is None:
                    state.reply, state.deltas = None, []
                    await self._store.set_replying(chat_id, False)
                    state.publish([StatusEvent(status=state.status)])
                    return
                response, user = posted
            state.begin_turn(user)

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
        return await self._chat(read_json(response))

    async def list_chats(self, *, labels: Mapping[str, str] | None = None) -> list[Chat]:
        """``GET /chats``; with ``labels``, only the started chats the bridge stored with all of them."""
        response = await self._rest.call("list_chats", "GET", CHATS, idempotent=True)
        raw = read_json(response)
        if not isinstance(raw, list):
            raise CoderError("Coder sent a chat list that is not a list", status=response.status_code)
        if labels:
            wanted = {c.chat_id for c in await self._store.find_chats(labels) if c.started}
            raw = [item for item in raw if isinstance(item, dict) and str(item.get("id")) in wanted]
        return [await self._chat(item) for item in raw]

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
        """Close the streaming reply (the 2025 AI-SDK API's only way to stop; coderd drops the partial step).

        Held follow-ups stay held until the next ``send_message`` or ``promote_queued``, as Coder's
        own queue does after an interrupt.
        """
        await self._cancel(chat_id, self._state(chat_id))
        return await self.get_chat(chat_id)

    async def _cancel(self, chat_id: ChatId, state: _ChatState) -> None:
        task = state.reply
        if task is None or task.done():
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        state.reply, state.deltas = None, []
        await self._store.set_replying(chat_id, False)
        state.publish([StatusEvent(status=state.status)])

    async def set_archived(self, chat_id: ChatId, archived: bool) -> None:
        """The 2025 AI-SDK API has no archive: refused, or (opted in) archiving deletes the chat for good."""
        if not self._archive_deletes:
            raise CoderRejected(
                "this Coder version's chat API cannot archive chats, so the chat is unchanged", status=405
            )
        if not archived:
            raise CoderRejected(
                "the chat was deleted (this Coder version cannot archive), so it cannot come back", status=410
            )
        await self._cancel(chat_id, self._state(chat_id))
        with contextlib.suppress(CoderNotFound):
            await self._rest.call("delete_chat", "DELETE", self._path(chat_id), idempotent=True)
        await self._store.forget_chat(chat_id)

    async def promote_queued(self, chat_id: ChatId, queued_id: int) -> Message:
        """Send a held follow-up now: the streaming reply (if any) is interrupted first.

        Returns the user message as it will be stored, with its positional id.
        """
        state = self._state(chat_id)
        found = next((h for h in await self._store.held(chat_id) if h.id == queued_id), None)
        if found is None:
            raise CoderRejected(f"Queued message {queued_id} is not queued in this chat", status=404)
        await self._cancel(chat_id, state)
        async with state.lock:
            message = await self._start(chat_id, state, found.content)
            await self._store.release(chat_id, found.id)
            await self._publish_queue(chat_id, state)
        return message

    async def read_file(self, file_id: str) -> bytes:
        """The 2025 AI-SDK API keeps no chat files to read back: always ``CoderRejected``."""
        raise CoderRejected("This Coder version's chat API keeps no chat files", status=405)

    async def submit_tool_results(self, chat_id: ChatId, results: Sequence[ToolResult]) -> None:
        """The 2025 AI-SDK API's agent never waits for a client's tool result: always ``CoderRejected``."""
        raise CoderRejected("This Coder version's chat API takes no tool results from clients", status=405)

    async def edit_message(
        self, chat_id: ChatId, message_id: int, content: Sequence[InputPart]
    ) -> EditResult:
        """The 2025 AI-SDK API has no message edit: always ``CoderRejected``."""
        raise CoderRejected("This Coder version's chat API cannot edit messages", status=405)

    async def rename(self, chat_id: ChatId, title: str) -> Chat:
        """The 2025 AI-SDK API has no route that renames a chat (its title comes from the first
        message): always ``CoderRejected``."""
        raise CoderRejected("This Coder version's chat API cannot rename chats", status=405)

    async def queued_messages(self, chat_id: ChatId) -> list[QueuedMessage]:
        """The follow-ups the bridge holds for the chat (its store), oldest first."""
        return [held.queued() for held in await self._store.held(chat_id)]

    async def delete_queued(self, chat_id: ChatId, queued_id: int) -> None:
        """Drop a held follow-up (nothing if it was already sent)."""
        state = self._state(chat_id)
        async with state.lock:
            if await self._store.release(chat_id, queued_id):
                await self._publish_queue(chat_id, state)

    async def upload_file(self, organization_id: str, data: bytes, media_type: str, filename: str) -> str:
        """Kept in memory and sent inline (aisdk ``file`` part, base64) by the message using it."""
        file_id = str(uuid.uuid4())
        self._files[file_id] = (media_type, data)
        return file_id

    def watch(self) -> None:
        """The 2025 AI-SDK API has no watch socket: chats change only through this process."""
        return None

    async def get_diff(self, chat_id: ChatId) -> None:
        """The 2025 AI-SDK API tracks no diffs or pull requests."""
        return None

    async def download_file(self, file_id: str) -> tuple[bytes, str]:
        """A file this process uploaded (the 2025 API stores none; its agent attaches none)."""
        if file_id not in self._files:
            raise CoderNotFound("The 2025 AI-SDK chat API keeps no files.")
        media_type, data = self._files[file_id]
        return data, media_type

    def file_url(self, file_id: str) -> str:
        """The 2025 API has no file route: the chat list is the nearest page."""
        return self.base_url

    async def chat_cost(self, chat_id: ChatId) -> None:
        """The 2025 AI-SDK API reports no cost."""
        return None

    async def facts(self) -> ServerFacts:
        """The version: the 2025 AI-SDK API has none of the behaviours later builds differ in (no MCP
        servers, no queue to promote from, no labels; its errors are the bridge's own words)."""
        return ServerFacts(version=await server_version(self._rest))

    def stream(self, chat_id: ChatId, *, after_id: int | None = None) -> AiSdkStream:
        """A snapshot (status, stored messages after ``after_id``, queue), then this process's live events."""
        return AiSdkStream(self, chat_id, after_id)

    async def _snapshot(
        self, chat_id: ChatId, state: _ChatState, after_id: int | None, deltas: Batch
    ) -> Batch:
        """What a new subscriber needs first; it also notices a reply the last stop cut off.

        ``deltas`` are the turn's deltas taken when the subscriber joined: later ones reach it live.

        Such a reply ended with the process that asked for it: the thread is told once, and the
        follow-ups held behind it are sent now, as when a reply ends.
        """
        messages = await self._messages(chat_id)
        notices: Batch = []
        async with state.lock:
            stored = await self._store.get_chat(chat_id)
            if stored is not None and stored.replying and not state.busy:
                await self._store.set_replying(chat_id, False)
                notices.append(ErrorEvent(message="", notice=BackendNotice.REPLY_CUT_BY_RESTART))
                try:
                    await self._send_next(chat_id, state)
                except CoderError as exc:
                    notices.append(ErrorEvent(message=str(exc), notice=BackendNotice.FOLLOW_UP_UNSENT))
            held = await self._store.held(chat_id)
        unseen = [MessageEvent(message=m) for m in messages if after_id is None or m.id > after_id]
        # The running turn's deltas come after the user message that began it (a follow-up's tool
        # calls seen before its message landed on the previous turn's card), and before its steps'
        # stored messages, which complete them.
        begun = max((i + 1 for i, e in enumerate(unseen) if e.message.role == "user"), default=0)
        batch: Batch = [StatusEvent(status=state.status), *unseen[:begun], *deltas, *unseen[begun:]]
        batch += notices
        if held:
            batch.append(QueueEvent(queue=tuple(h.queued() for h in held)))
        return batch

    async def aclose(self) -> None:
        """Cancel every streaming reply (still marked as replying, for the next start to tell),
        end every stream, close the connection pools."""
        tasks = [s.reply for s in self._chats.values() if s.reply is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for state in self._chats.values():
            for inbox in state.subscribers:
                inbox.put_nowait(None)
        await self._streaming.aclose()
        await self._rest.aclose()


class AiSdkStream:
    """One subscriber of a chat's events; the ``ChatStream`` of the 2025 AI-SDK backend.

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
        deltas = list(self._state.deltas)  # taken with the subscription: later deltas arrive in the inbox
        try:
            yield [ConnectedEvent(after_id=self._after_id)]
            snapshot = await self._backend._snapshot(self._chat_id, self._state, self._after_id, deltas)
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
