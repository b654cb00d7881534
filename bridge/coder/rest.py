"""REST transport to Coder: auth header, timeouts, error mapping and the one retry policy.

Every REST call of every backend goes through ``RestClient.call``, so retries happen here and
nowhere else (design, section 7). Calls the caller marks idempotent are retried; others only when
the caller can tell that a failed attempt did not take effect (``landed``): repeating a chat
creation or a message send blindly could duplicate it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from bridge.coder.backoff import Backoff, DelayFactory
from bridge.coder.errors import (
    CoderAuthError,
    CoderError,
    CoderNotFound,
    CoderRejected,
    CoderUnavailable,
    CoderUnreadable,
    Validation,
)
from bridge.coder.excerpt import excerpt
from bridge.coder.failures import body_kind
from bridge.coder.observe import NOOP_OBSERVER, CoderObserver
from bridge.coder.types import ErrorKind

log = logging.getLogger(__name__)

TOKEN_HEADER = "Coder-Session-Token"


@dataclass(frozen=True)
class RetryPolicy:
    """How idempotent REST calls are retried on ``CoderUnavailable``.

    ``attempts`` counts the first try. A ``Retry-After`` (seconds) on 429/503 replaces the drawn
    delay; one longer than ``max_retry_after`` ends the retries instead, because the caller is
    better placed to wait that long than a request held open.
    """

    attempts: int = 4
    delays: DelayFactory = Backoff(initial=0.25, cap=5.0).delays
    max_retry_after: float = 30.0


DEFAULT_RETRY = RetryPolicy()
DEFAULT_TIMEOUT = 30.0


def error_from_response(status: int, body: bytes, reason: str = "") -> CoderError:
    """The ``CoderError`` for a non-2xx answer, carrying Coder's message, detail, validations and
    the kind newer builds (or an older usage-limit body) show."""
    message, detail, validations, kind = _parse_error_body(status, body)
    if not message:
        message = f"Coder answered HTTP {status} {reason}".strip()
    return error_class_for(status)(message, detail, status, validations, kind)


def error_class_for(status: int) -> type[CoderError]:
    """Which branch of the error tree an HTTP status belongs to (see ``errors``)."""
    if status == 401:
        return CoderAuthError
    if status == 404:
        return CoderNotFound
    if status in (408, 429) or status >= 500:
        return CoderUnavailable
    return CoderRejected


def _parse_error_body(status: int, body: bytes) -> tuple[str, str, tuple[Validation, ...], ErrorKind]:
    try:
        data = json.loads(body)
    except ValueError:
        return "", excerpt(body.decode("utf-8", "replace")), (), ErrorKind.GENERIC
    if not isinstance(data, dict) or not isinstance(data.get("message"), str):
        return "", excerpt(body.decode("utf-8", "replace")), (), ErrorKind.GENERIC
    detail = data.get("detail")
    validations = tuple(
        Validation(str(v.get("field", "")), str(v.get("detail", "")))
        for v in data.get("validations") or ()
        if isinstance(v, dict)
    )
    return data["message"], detail if isinstance(detail, str) else "", validations, body_kind(status, data)


def read_json(response: httpx.Response) -> Any:
    """The response's JSON body; a body that is not JSON means we are not talking to Coder."""
    try:
        return response.json()
    except ValueError as exc:
        raise CoderUnreadable(
            "Coder sent an answer that is not JSON",
            detail=excerpt(response.text),
            status=response.status_code,
        ) from exc


def _retry_after(response: httpx.Response) -> float | None:
    if response.status_code not in (429, 503):
        return None
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None  # an HTTP-date, or absent: fall back to our own backoff


async def _landed_or_unknown(landed: Callable[[], Awaitable[bool]]) -> bool:
    """Whether a failed attempt took effect; a check that fails itself counts as "maybe"."""
    try:
        return await landed()
    except CoderError as exc:
        log.warning("could not tell whether a failed Coder call took effect: %s", exc)
        return True


class RestClient:
    """An ``httpx.AsyncClient`` bound to one Coder deployment and session token."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        ssl_context: ssl.SSLContext | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        observer: CoderObserver = NOOP_OBSERVER,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._retry = retry
        self._observer = observer
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers={TOKEN_HEADER: token, "Accept": "application/json"},
            timeout=timeout,
            verify=ssl_context if ssl_context is not None else True,
        )

    async def call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        idempotent: bool,
        params: Mapping[str, str | int | list[str]] | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        landed: Callable[[], Awaitable[bool]] | None = None,
    ) -> httpx.Response:
        """Send one request (retrying it if ``idempotent``); returns a 2xx response or raises.

        ``operation`` names the call for the observer (e.g. ``"create_chat"``). ``landed`` makes a
        call that is not idempotent safe to retry: asked after each attempt that failed with
        ``CoderUnavailable`` (a timeout or a 5xx may hide a request Coder carried out), it says
        whether the attempt took effect after all; if so, or if it cannot tell, the error is raised
        instead of trying again.
        """
        request = self._client.build_request(
            method, path, params=params, json=json_body, content=content, headers=headers
        )
        delays = self._retry.delays()
        attempts = max(1, self._retry.attempts) if idempotent or landed is not None else 1
        attempt = 1
        while True:
            retry_after: float | None = None
            try:
                response = await self._attempt(operation, request)
            except CoderUnavailable as exc:
                error: CoderError = exc
            else:
                if response.is_success:
                    return response
                error = error_from_response(response.status_code, response.content, response.reason_phrase)
                retry_after = _retry_after(response)
            if not isinstance(error, CoderUnavailable) or attempt >= attempts:
                raise error
            if retry_after is not None and retry_after > self._retry.max_retry_after:
                raise error
            if not idempotent and landed is not None and await _landed_or_unknown(landed):
                raise error
            delay = next(delays) if retry_after is None else retry_after
            log.info("Coder %s %s failed (%s); retry %d in %.2fs", method, path, error, attempt, delay)
            await asyncio.sleep(delay)
            attempt += 1

    async def _attempt(self, operation: str, request: httpx.Request) -> httpx.Response:
        """One HTTP exchange of any status, reported to the observer; transport failures raise."""
        started = time.monotonic()
        outcome = CoderUnavailable.__name__
        try:
            response = await self._client.send(request)
            await response.aread()
            outcome = "ok" if response.is_success else error_class_for(response.status_code).__name__
            return response
        except httpx.UnsupportedProtocol as exc:
            outcome = CoderError.__name__
            raise CoderError(f"Coder URL {self.base_url} is not http(s)", detail=str(exc)) from exc
        except httpx.TransportError as exc:
            raise CoderUnavailable(
                f"Could not reach Coder at {self.base_url}", detail=str(exc) or type(exc).__name__
            ) from exc
        finally:
            self._observer.call_finished(operation, outcome, time.monotonic() - started)

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._client.aclose()
