"""Coder's classified errors read from the wire: a chat's ``last_error``, an ``error`` stream event's
payload, and the kind of a REST error body.

The newest source classifies every failure (``codersdk.ChatError``: ``message``, ``detail``?,
``kind``?, ``provider``?, ``retryable``, ``status_code``?; coder/coder codersdk/chats.go at
004053e8). G1 sends ``last_error`` as a bare string and early stream errors carry only a message;
all of them read as a ``ChatFailure``, unknown kinds as ``generic``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.coder.types import ChatFailure, ErrorKind

_USAGE_LIMIT_KEYS = ("resets_at", "limit_micros", "spent_micros")
"""``ChatUsageLimitExceededResponse``: the 409 older builds answer a spent limit with."""


def read_failure(raw: Any) -> ChatFailure | None:
    """A ``last_error`` or ``error`` payload: a ChatError object, a G1 string, or nothing."""
    if isinstance(raw, Mapping):
        message = raw.get("message")
        if not message:
            return None
        status = raw.get("status_code")
        return ChatFailure(
            message=str(message),
            detail=str(raw.get("detail") or ""),
            kind=ErrorKind.read(raw.get("kind")),
            provider=str(raw.get("provider") or ""),
            retryable=raw.get("retryable") is True,
            status_code=status if isinstance(status, int) and status else None,
        )
    return ChatFailure(message=str(raw)) if raw else None


def body_kind(status: int, body: Mapping[str, Any]) -> ErrorKind:
    """The kind of a REST error body: its own ``kind`` (hook denials and dispatch failures), else a
    usage limit where the older 409 body shows one, else ``generic``."""
    if body.get("kind"):
        return ErrorKind.read(body["kind"])
    if status == 409 and any(body.get(key) for key in _USAGE_LIMIT_KEYS):
        return ErrorKind.USAGE_LIMIT
    return ErrorKind.GENERIC
