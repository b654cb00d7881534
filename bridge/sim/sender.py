"""How the Slack simulator reaches the app: signed HTTP posts and a Socket Mode WebSocket endpoint.

Both transports carry the same payloads (reference section 1). Over HTTP each request is signed with
the app's signing secret and must be answered 2xx within ``ack_timeout``; over Socket Mode each
envelope must be acked within ``ack_timeout``. ``events_api`` payloads that fail are retried up to three
times with the same body and event_id, marked ``X-Slack-Retry-Num``/``retry_attempt`` — the bridge's
deduplication is tested against exactly this behaviour. Interactions and commands are never retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

logger = logging.getLogger(__name__)

JsonDict = dict[str, Any]
PayloadKind = Literal["events_api", "interactive", "slash_commands"]
Transport = Literal["http", "socket_mode"]

# Slack retries a failed event "roughly immediately, then after ~1 minute, then after ~5 minutes".
DEFAULT_RETRY_DELAYS = (0.0, 60.0, 300.0)


def sign(signing_secret: str, timestamp: str, body: bytes) -> str:
    """Slack's v0 request signature: HMAC-SHA256 over ``"v0:{timestamp}:{body}"``, hex, ``v0=`` prefix."""
    base = f"v0:{timestamp}:".encode() + body
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(signing_secret: str, body: bytes, content_type: str, *, timestamp: int) -> dict[str, str]:
    """The headers of a signed request from Slack."""
    stamp = str(timestamp)
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": sign(signing_secret, stamp, body),
    }


@dataclass
class Delivery:
    """One attempt to hand a payload to the app; recorded when sent and completed when answered.

    ``attempt`` is 0 for the first delivery and n for the n-th retry (``X-Slack-Retry-Num`` /
    ``retry_attempt``). ``failure`` says why the attempt did not count as acknowledged:
    ``http_timeout``, ``http_error``, ``connection_failed``, ``too_many_redirects``, ``timeout``
    (no Socket Mode ack), ``connection_closed`` or ``no_endpoint`` (no event_url and no socket).
    """

    kind: PayloadKind
    event_id: str | None
    event_type: str | None
    payload: JsonDict
    attempt: int
    retry_reason: str | None
    sent_at: float
    transport: Transport | None = None
    envelope_id: str | None = None
    status: int | None = None
    acked: bool = False
    done: bool = False
    failure: str | None = None
    response_body: str = ""
    no_retry: bool = False


class AppResponse(NamedTuple):
    """The app's answer to an interaction or command: HTTP status and body.

    Over Socket Mode an ack counts as status 200 and its ``payload`` (if any) is the body as JSON;
    status 0 means no answer arrived within ``ack_timeout``.
    """

    status: int
    body: str


@dataclass
class _Connection:
    ws: web.WebSocketResponse
    pending: set[str]
    gone: asyncio.Event


class SocketModeHub:
    """The WebSocket side of Socket Mode: single-use tickets, hello, envelopes, acks, disconnects."""

    def __init__(self, *, app_id: str, on_change: Callable[[], None]) -> None:
        self.base_url = ""  # ws://127.0.0.1:PORT, set once the server listens
        self.ever_opened = False
        self._app_id = app_id
        self._on_change = on_change
        self._tickets: set[str] = set()
        self._connections: list[_Connection] = []
        self._acks: dict[str, asyncio.Future[JsonDict | None]] = {}
        self._connected = asyncio.Event()

    @property
    def connection_count(self) -> int:
        """How many Socket Mode clients are connected now."""
        return len(self._connections)

    def open_url(self) -> str:
        """A fresh single-use ``wss``-style URL, as ``apps.connections.open`` returns it."""
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        self.ever_opened = True
        return f"{self.base_url}/link/?ticket={ticket}&app_id={self._app_id}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve one Socket Mode connection: hello first, then read acks until the client leaves."""
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return web.json_response({"ok": False, "error": "invalid_ticket"}, status=401)
        self._tickets.discard(ticket)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        connection = _Connection(ws=ws, pending=set(), gone=asyncio.Event())
        self._connections.append(connection)
        self._connected.set()
        self._on_change()
        try:
            await ws.send_json(
                {
                    "type": "hello",
                    "num_connections": len(self._connections),
                    "debug_info": {
                        "host": "applink-sim",
                        "build_number": 1,
                        "approximate_connection_time": 18060,
                    },
                    "connection_info": {"app_id": self._app_id},
                }
            )
            async for frame in ws:
                if frame.type == aiohttp.WSMsgType.TEXT:
                    self._receive(frame.data)
        except ConnectionError:
            logger.info("socket mode client went away before hello")
        finally:
            self._drop(connection)
        return ws

    def _receive(self, data: str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            logger.warning("socket mode client sent non-JSON frame: %.200s", data)
            return
        envelope_id = message.get("envelope_id") if isinstance(message, dict) else None
        future = self._acks.get(envelope_id) if isinstance(envelope_id, str) else None
        if future is not None and not future.done():
            future.set_result(message)

    def _drop(self, connection: _Connection) -> None:
        connection.gone.set()
        if connection in self._connections:
            self._connections.remove(connection)
        if not self._connections:
            self._connected.clear()
        for envelope_id in connection.pending:
            future = self._acks.get(envelope_id)
            if future is not None and not future.done():
                future.set_result(None)
        self._on_change()

    async def wait_connected(self, timeout: float) -> bool:
        """Wait until some client is connected (e.g. while one reconnects); False on timeout."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout)
        return self._connected.is_set()

    async def send(
        self,
        delivery: Delivery,
        payload: JsonDict,
        *,
        accepts_response_payload: bool,
        timeout: float,
    ) -> None:
        """Push one envelope to the newest connection, wait for its ack and record it in ``delivery``.

        An ack's optional ``payload`` (a command's reply) becomes the delivery's response body.
        """
        connection = self._connections[-1]
        envelope_id = str(uuid.uuid4())
        delivery.transport, delivery.envelope_id = "socket_mode", envelope_id
        future: asyncio.Future[JsonDict | None] = asyncio.get_running_loop().create_future()
        self._acks[envelope_id] = future
        connection.pending.add(envelope_id)
        envelope = {
            "envelope_id": envelope_id,
            "type": delivery.kind,
            "accepts_response_payload": accepts_response_payload,
            "retry_attempt": delivery.attempt,
            "retry_reason": delivery.retry_reason or "",
            "payload": payload,
        }
        try:
            await connection.ws.send_json(envelope)
            ack = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            delivery.failure = "timeout"
            return
        except ConnectionError:
            delivery.failure = "connection_closed"
            return
        finally:
            self._acks.pop(envelope_id, None)
            connection.pending.discard(envelope_id)
        if ack is None:
            delivery.failure = "connection_closed"
            return
        delivery.acked, delivery.status = True, 200
        ack_payload = ack.get("payload")
        if isinstance(ack_payload, dict):
            delivery.response_body = json.dumps(ack_payload)

    async def disconnect(self, reason: str, *, grace: float) -> None:
        """Send a ``disconnect`` frame to every client, give them ``grace`` seconds to move, then close.

        Slack likewise lets a refreshed connection linger until the client has reconnected; the SDK
        closes the old socket itself as soon as it has a new URL.
        """
        connections = list(self._connections)
        frame = {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-sim"}}
        for connection in connections:
            with contextlib.suppress(ConnectionError):
                await connection.ws.send_json(frame)
        deadline = time.monotonic() + grace
        for connection in connections:
            remaining = deadline - time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(connection.gone.wait(), max(0.0, remaining))
            await connection.ws.close()

    async def close(self) -> None:
        """Close every connection (server shutdown)."""
        for connection in list(self._connections):
            await connection.ws.close()


@dataclass
class AckLoss:
    """Acks that never reach Slack: the app handled the event, Slack times out and retries it.

    What an overloaded network or a slow proxy does to a fast app; the retries carry the same
    event_id with ``X-Slack-Retry-Num`` 1..3 (``retry_attempt`` over Socket Mode). ``rate`` is the
    fraction of acknowledged event deliveries lost; ``rng`` is seeded so a run can be replayed.
    """

    rate: float
    rng: random.Random = field(default_factory=random.Random)
    lost: int = 0
    """How many acks were lost so far."""

    def apply(self, delivery: Delivery) -> None:
        """Maybe lose this delivery's ack, marking it failed as Slack would see it."""
        if self.rng.random() >= self.rate:
            return
        self.lost += 1
        delivery.acked = False
        delivery.failure = "http_timeout" if delivery.transport == "http" else "timeout"


class EventDeliverer:
    """Delivers payloads over Socket Mode when a client is connected, else by signed POST to event_url."""

    def __init__(
        self,
        *,
        signing_secret: str,
        ack_timeout: float,
        time_scale: float,
        hub: SocketModeHub,
        on_change: Callable[[], None],
    ) -> None:
        self.signing_secret = signing_secret
        self.ack_timeout = ack_timeout
        self.event_url: str | None = None
        self.retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS
        self.request_timestamp_offset = 0.0
        self.ack_loss: AckLoss | None = None
        self.deliveries: list[Delivery] = []
        self._time_scale = time_scale
        self._hub = hub
        self._on_change = on_change
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the HTTP client used for deliveries.

        Slack delivers events in parallel without a cap of its own. aiohttp's default pool of 100
        connections made a burst of deliveries queue in the simulator, and the 3 s ``ack_timeout``
        (which counts that wait) failed them before the app had seen them.
        """
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def close(self) -> None:
        """Close the HTTP client."""
        if self._session is not None:
            await self._session.close()

    async def deliver_event(self, body: JsonDict, *, retry_num: int | None = None) -> Delivery:
        """Deliver an event callback, retrying like Slack; returns the last attempt.

        With ``retry_num`` exactly one attempt is made, marked as that retry (for duplicate tests).
        """
        raw = json.dumps(body).encode()
        if retry_num is not None:
            return await self._attempt(
                "events_api", body, raw, retry_num, "http_timeout" if retry_num else None
            )
        reason: str | None = None
        attempt = 0
        while True:
            delivery = await self._attempt("events_api", body, raw, attempt, reason)
            final = delivery.acked or delivery.no_retry or delivery.failure == "no_endpoint"
            if final or attempt >= len(self.retry_delays):
                return delivery
            await asyncio.sleep(self.retry_delays[attempt] * self._time_scale)
            reason, attempt = delivery.failure, attempt + 1

    async def deliver_interaction(self, kind: PayloadKind, payload: JsonDict) -> AppResponse:
        """Deliver a block_actions payload (``interactive``) or a command (``slash_commands``) once."""
        if kind == "interactive":
            raw = urlencode({"payload": json.dumps(payload)}).encode()
        else:
            raw = urlencode(payload).encode()
        delivery = await self._attempt(kind, payload, raw, 0, None)
        return AppResponse(delivery.status or 0, delivery.response_body)

    async def _attempt(
        self, kind: PayloadKind, payload: JsonDict, raw: bytes, attempt: int, retry_reason: str | None
    ) -> Delivery:
        event = payload.get("event")
        delivery = Delivery(
            kind=kind,
            event_id=payload.get("event_id") if kind == "events_api" else None,
            event_type=event.get("type") if isinstance(event, dict) else payload.get("type"),
            payload=payload,
            attempt=attempt,
            retry_reason=retry_reason,
            sent_at=time.monotonic(),
        )
        self.deliveries.append(delivery)
        self._on_change()
        try:
            if not self._hub.connection_count and self.event_url is None and self._hub.ever_opened:
                # A Socket Mode app between connections: Slack holds the event for a while.
                await self._hub.wait_connected(self.ack_timeout)
            if self._hub.connection_count:
                await self._hub.send(
                    delivery,
                    payload,
                    accepts_response_payload=kind == "slash_commands"
                    or payload.get("type") == "view_submission",
                    timeout=self.ack_timeout,
                )
            elif self.event_url is not None:
                await self._post(delivery, raw, attempt, retry_reason)
            else:
                delivery.failure = "connection_failed" if self._hub.ever_opened else "no_endpoint"
            if delivery.acked and kind == "events_api" and self.ack_loss is not None:
                self.ack_loss.apply(delivery)
        finally:
            delivery.done = True
            self._on_change()
        return delivery

    async def _post(self, delivery: Delivery, raw: bytes, attempt: int, retry_reason: str | None) -> None:
        assert self._session is not None, "start() first"
        assert self.event_url is not None
        delivery.transport = "http"
        content_type = (
            "application/json" if delivery.kind == "events_api" else "application/x-www-form-urlencoded"
        )
        timestamp = int(time.time() + self.request_timestamp_offset)
        headers = signed_headers(self.signing_secret, raw, content_type, timestamp=timestamp)
        if attempt:
            headers.update({"X-Slack-Retry-Num": str(attempt), "X-Slack-Retry-Reason": retry_reason or ""})
        try:
            async with self._session.post(
                self.event_url,
                data=raw,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.ack_timeout),
                max_redirects=2,
            ) as response:
                delivery.response_body = await response.text()
                delivery.status = response.status
                delivery.no_retry = response.headers.get("X-Slack-No-Retry") == "1"
        except TimeoutError:
            delivery.failure = "http_timeout"
            return
        except aiohttp.TooManyRedirects:
            delivery.failure = "too_many_redirects"
            return
        except aiohttp.ClientError:
            delivery.failure = "connection_failed"
            return
        delivery.acked = 200 <= delivery.status < 300
        if not delivery.acked:
            delivery.failure = "http_error"
