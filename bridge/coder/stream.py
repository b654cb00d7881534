"""A chat's event stream over WebSocket that survives drops and resumes where it left off.

Shaped like websockets' own reconnecting client (design, section 10, example 2): the reconnect
loop is an async iterator of sessions (``_sessions``), the waits between attempts come from a
swappable delay factory (``ReconnectPolicy.delays``), and whether to retry is a plain function of
the exception (``classify_failure``: retry exactly when it says ``CoderUnavailable``).

Any one-way WebSocket of Coder events can use this class: it only needs the URL for a cursor and a
parser for one raw event. Chat streams and the chat-list watch (``watch``) both do, so drops,
backoff and giving up behave the same on both sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

from websockets.asyncio.client import connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidProxy,
    InvalidStatus,
    InvalidURI,
)

from bridge.coder.backoff import Backoff, DelayFactory
from bridge.coder.errors import CoderAuthError, CoderError, CoderUnavailable
from bridge.coder.framing import FrameDecoder, RawEvent
from bridge.coder.observe import NOOP_OBSERVER, CoderObserver
from bridge.coder.rest import TOKEN_HEADER, error_from_response
from bridge.coder.silence import HeardConnection, frames
from bridge.coder.types import ConnectedEvent, ErrorEvent, MessageEvent

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_E = TypeVar("_E")


@dataclass(frozen=True)
class ReconnectPolicy:
    """Socket limits and when to stop reconnecting.

    ``max_failures`` consecutive failed attempts end the stream with ``CoderUnavailable``. Client
    pings make a silently dead socket (a NAT or proxy dropping it) fail within
    ``ping_interval + ping_timeout`` instead of hanging forever; a socket on which Coder says
    nothing (no frame, none of its 15 s pings) for ``silence_timeout`` is dropped and resumed too
    (``silence``), which also catches a peer that still answers our pings.
    """

    max_failures: int = 8
    delays: DelayFactory = Backoff(initial=1.0, cap=30.0).delays
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    silence_timeout: float | None = 45.0
    open_timeout: float = 10.0
    close_timeout: float = 2.0
    max_size: int = 16 * 2**20


DEFAULT_RECONNECT = ReconnectPolicy()


def classify_failure(exc: Exception) -> CoderError | None:
    """The ``CoderError`` a failed or dropped connection stands for; retry iff ``CoderUnavailable``.

    ``None`` means the exception is not about the connection (a bug): let it propagate as is.
    """
    if isinstance(exc, InvalidStatus):
        response = exc.response
        error = error_from_response(response.status_code, bytes(response.body or b""), response.reason_phrase)
        if response.status_code == 403:
            # On the upgrade a 403 means this token may not read streams at all.
            return CoderAuthError(error.message, error.detail, error.status, error.validations)
        return error
    if isinstance(exc, InvalidURI | InvalidProxy):
        return CoderError("The Coder stream URL or proxy setting is invalid", detail=str(exc))
    if isinstance(exc, ConnectionClosed):
        return CoderUnavailable("Coder closed the chat stream", detail=str(exc))
    if isinstance(exc, OSError | TimeoutError | EOFError | InvalidHandshake):
        return CoderUnavailable("Could not connect to the Coder chat stream", detail=str(exc) or repr(exc))
    return None


@dataclass
class _Session:
    """One live socket, the cursor it was opened with, and whether it delivered an event yet."""

    socket: HeardConnection
    after_id: int | None
    proven: bool = False


def _retry_or_raise(exc: Exception) -> CoderUnavailable:
    """Apply ``classify_failure``: return the error to retry after, or raise the fatal one."""
    error = classify_failure(exc)
    if error is None:
        raise exc
    if not isinstance(error, CoderUnavailable):
        raise error from exc
    return error


class ReconnectingStream(Generic[_E]):
    """Batches of ``_E`` over a one-way WebSocket: ``[ConnectedEvent]``, then event batches, repeatedly.

    For a chat stream (``ChatStream``) ``_E`` is ``StreamEvent``; for the watch, ``WatchEvent``.

    The cursor (highest persisted message id seen) becomes ``after_id`` of the next connection,
    so Coder's snapshot after a reconnect holds only messages the consumer has not seen. A
    connection counts as successful only once it delivered an event: one that Coder accepts and
    closes at once (e.g. after an ``error`` envelope) is a failed attempt, so it backs off and
    eventually gives up instead of spinning.
    """

    def __init__(
        self,
        *,
        chat_id: str | None,
        url_for: Callable[[int | None], str],
        token: str,
        parse_event: Callable[[RawEvent], _E | None],
        after_id: int | None = None,
        policy: ReconnectPolicy = DEFAULT_RECONNECT,
        observer: CoderObserver = NOOP_OBSERVER,
        ssl_context: ssl.SSLContext | None = None,
        name: str = "",
    ) -> None:
        """``name`` says which socket this is in logs and errors (default: the chat's stream)."""
        self._chat_id = chat_id
        self._name = name or f"stream of chat {chat_id}"
        self._url_for = url_for
        self._token = token
        self._parse_event = parse_event
        self._cursor = after_id
        self._policy = policy
        self._observer = observer
        self._ssl_context = ssl_context
        self._closing = asyncio.Event()
        self._socket: HeardConnection | None = None

    def __aiter__(self) -> AsyncIterator[list[_E | ConnectedEvent | ErrorEvent]]:
        """The batches; iterate once, from one task."""
        return self._batches()

    async def aclose(self) -> None:
        """Stop the stream; the iteration ends soon after, also when it runs in another task."""
        self._closing.set()
        await self._release()

    async def _batches(self) -> AsyncGenerator[list[_E | ConnectedEvent | ErrorEvent], None]:
        async with contextlib.aclosing(self._sessions()) as sessions:
            async for session in sessions:
                yield [ConnectedEvent(after_id=session.after_id)]
                decoder = FrameDecoder()
                try:
                    async for frame in frames(session.socket, self._policy.silence_timeout):
                        batch = self._parse_frame(decoder, frame, session)
                        if batch:
                            yield batch
                except ConnectionClosed:
                    pass  # an abnormal close; _sessions decides whether to reconnect

    def _parse_frame(
        self, decoder: FrameDecoder, frame: str | bytes, session: _Session
    ) -> list[_E | ConnectedEvent | ErrorEvent]:
        batch: list[_E | ConnectedEvent | ErrorEvent] = []
        for raw in decoder.decode(frame):
            if isinstance(raw, ErrorEvent):
                batch.append(raw)
                continue
            session.proven = True
            event = self._parse_event(raw)
            if isinstance(event, MessageEvent):
                self._cursor = max(self._cursor or 0, event.message.id)
            if event is not None:
                batch.append(event)
        return batch

    async def _sessions(self) -> AsyncGenerator[_Session, None]:
        """Open sockets one after another until closed or until reconnecting looks hopeless."""
        failures = 0
        delays = self._policy.delays()
        while not self._closing.is_set():
            after_id = self._cursor
            proven = False
            try:
                socket = await self._unless_closing(self._connect(after_id))
            except Exception as exc:
                error = _retry_or_raise(exc)
            else:
                if socket is None:
                    return
                session = _Session(socket, after_id)
                self._socket = socket
                self._observer.stream_opened()
                try:
                    if self._closing.is_set():
                        return
                    yield session
                finally:
                    await self._release()
                proven = session.proven
                error = _retry_or_raise(socket.close_exc)
            if self._closing.is_set():
                return
            if proven:
                failures, delays = 0, self._policy.delays()
            else:
                failures += 1
                if failures >= self._policy.max_failures:
                    raise CoderUnavailable(
                        f"Gave up on the Coder {self._name} after {failures} failed connection attempts",
                        detail=str(error),
                    )
            delay = next(delays)
            self._observer.stream_reconnecting()
            log.info(
                "Reconnecting the Coder %s in %.2fs (attempt %d): %s",
                self._name,
                delay,
                failures + 1,
                error,
                extra={"chat_id": self._chat_id, "attempt": failures + 1, "delay": delay},
            )
            await self._unless_closing(asyncio.sleep(delay))

    async def _connect(self, after_id: int | None) -> HeardConnection:
        url = self._url_for(after_id)
        socket = await connect(
            url,
            create_connection=HeardConnection,
            additional_headers={TOKEN_HEADER: self._token},
            compression=None,
            max_size=self._policy.max_size,
            open_timeout=self._policy.open_timeout,
            close_timeout=self._policy.close_timeout,
            ping_interval=self._policy.ping_interval,
            ping_timeout=self._policy.ping_timeout,
            ssl=self._ssl_context if url.startswith("wss:") else None,
        )
        assert isinstance(socket, HeardConnection)
        return socket

    async def _unless_closing(self, work: Coroutine[Any, Any, _T]) -> _T | None:
        """``work``'s result, or ``None`` if ``aclose`` came first (then ``work`` is cancelled).

        The two helper tasks live only inside this call, so nothing outlives the stream.
        """
        task = asyncio.ensure_future(work)
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait((task, closing), return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
            if not task.done():
                task.cancel()
                await asyncio.wait((task,))
        return None if task.cancelled() else task.result()

    async def _release(self) -> None:
        """Close the live socket, if any, and report it closed exactly once."""
        socket, self._socket = self._socket, None
        if socket is not None:
            self._observer.stream_closed()
            await socket.close()


def websocket_url(base_url: str, path: str, params: Mapping[str, str | int]) -> str:
    """The ``ws(s)://`` URL of ``path`` on the deployment at ``base_url`` (``http(s)://``)."""
    scheme, sep, rest = base_url.rstrip("/").partition("://")
    ws_scheme = {"https": "wss", "http": "ws"}.get(scheme.lower(), scheme)
    query = f"?{urlencode(params)}" if params else ""
    return f"{ws_scheme}{sep}{rest}{path}{query}"
