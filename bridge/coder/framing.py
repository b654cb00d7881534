"""Decoding WebSocket text frames of Coder's chat stream and watch sockets into raw events.

Coder changed the framing during the experimental API's life (reference, sections 4.2 and 4.8):

* bare:      ``[event, …]`` (stream) or ``{"kind": …}`` (watch), often with a trailing newline;
* envelope:  ``{"type": "data", "data": [event, …]}``, or ``data`` one object (a batch of one);
             ``{"type": "ping"}`` to ignore; ``{"type": "error", "data": {"message", "detail"}}``.

The same path served either depending on the build, so the framing is read off each connection's
first frame rather than assumed from the URL, and every valid shape is still accepted afterwards.
Parsing the events themselves is the backend's job; this module never raises on bad input, because
one garbled frame must not end a stream.
"""

from __future__ import annotations

import json
import logging
from enum import StrEnum
from typing import Any

from bridge.coder.excerpt import excerpt
from bridge.coder.types import ErrorEvent

log = logging.getLogger(__name__)

RawEvent = dict[str, Any]
"""One event object as Coder sent it, before a backend parses it."""

_ENVELOPE_TYPES = frozenset({"data", "ping", "error"})


class Framing(StrEnum):
    """How a connection wraps its events."""

    BARE = "bare"
    ENVELOPE = "envelope"


class FrameDecoder:
    """Decodes the frames of one connection; use a fresh decoder per connection."""

    def __init__(self) -> None:
        self.framing: Framing | None = None
        """The framing of the first well-formed frame, or ``None`` before one arrived."""

    def decode(self, frame: str | bytes) -> list[RawEvent | ErrorEvent]:
        """The events in one frame, in order; an envelope ``error`` becomes an ``ErrorEvent``.

        Pings, malformed JSON and unexpected shapes give an empty list (the latter two logged).
        """
        text = frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):  # nesting deeper than Python's stack is not Coder's JSON
            log.warning("Skipping a Coder frame that is not JSON: %s", excerpt(text))
            return []
        framing, events = _unwrap(document)
        if framing is None:
            log.warning("Skipping a Coder frame of unexpected shape: %s", excerpt(text))
            return []
        if self.framing is None:
            self.framing = framing
            log.debug("Coder socket uses %s framing", framing)
        return events


def _unwrap(document: Any) -> tuple[Framing | None, list[RawEvent | ErrorEvent]]:
    """The framing a document shows and its events; ``(None, [])`` for a shape we don't know."""
    if isinstance(document, list):
        return Framing.BARE, _event_objects(document)
    if not isinstance(document, dict):
        return None, []
    if "kind" in document and "type" not in document:
        return Framing.BARE, [document]
    kind = document.get("type")
    if kind not in _ENVELOPE_TYPES:
        return None, []
    data = document.get("data")
    if kind == "ping":
        return Framing.ENVELOPE, []
    if kind == "error":
        return Framing.ENVELOPE, [_envelope_error(data)]
    if isinstance(data, dict):
        return Framing.ENVELOPE, [data]
    if isinstance(data, list):
        return Framing.ENVELOPE, _event_objects(data)
    return None, []


def _event_objects(items: list[Any]) -> list[RawEvent | ErrorEvent]:
    events: list[RawEvent | ErrorEvent] = []
    for item in items:
        if isinstance(item, dict):
            events.append(item)
        else:
            log.warning("Skipping a Coder stream event that is not an object: %s", excerpt(repr(item)))
    return events


def _envelope_error(data: Any) -> ErrorEvent:
    """Coder's ``{"message", "detail"?}`` as one line, the way Coder's own SDK joins them."""
    fields = data if isinstance(data, dict) else {}
    message = str(fields.get("message") or "Coder reported a stream error")
    detail = fields.get("detail")
    return ErrorEvent(message=f"{message}: {detail}" if detail else message, error_kind="stream")
