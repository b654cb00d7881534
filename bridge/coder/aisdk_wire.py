"""Wire shapes of the 2025 AI-SDK chat API (G0a) on ``/api/v2/chats`` (reference section 6).

Pure functions and small state machines, no I/O: the backend (``aisdk``) feeds them what it reads.

- ``parse_chat`` / ``parse_message``: its Chat and aisdk.Message JSON into ``types`` models. Its
  message ids are strings; a message's ``Message.id`` is its 1-based position in the chat's list.
- ``DataStreamDecoder``: the body of ``POST /messages``, either the Vercel AI SDK data stream v1
  (``<TYPE_ID>:<JSON>`` lines) or its SSE form (``data: {json}`` events), into ``WirePart`` values.
- ``ReplyAccumulator``: ``WirePart`` values into normalized stream events, and one persisted
  ``Message`` per finished step, built like aisdk's accumulator so it equals the stored message.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from bridge.coder.types import (
    Chat,
    ChatFailure,
    ChatId,
    ChatPhase,
    ChatStatus,
    ErrorEvent,
    Message,
    MessageEvent,
    Part,
    PartEvent,
    StreamEvent,
)

log = logging.getLogger(__name__)

IDLE = ChatStatus(phase=ChatPhase.IDLE, name="waiting")
RUNNING = ChatStatus(phase=ChatPhase.WORKING, name="running")
FAILED = ChatStatus(phase=ChatPhase.ERROR, name="error")
"""The 2025 AI-SDK API's chats have no status; the backend synthesizes these (named like G1's) from
its own replies."""

WireKind = Literal[
    "text",
    "reasoning",
    "tool-start",
    "tool-delta",
    "tool-call",
    "tool-result",
    "step-start",
    "step-finish",
    "finish",
    "error",
    "source",
    "file",
]


@dataclass(frozen=True)
class WirePart:
    """One data-stream part, the same whichever of the two forms carried it."""

    kind: WireKind
    text: str = ""
    tool_call_id: str = ""
    tool_name: str = ""
    value: Any = None  # args, result, finish reason, or the source/file object


# -- REST shapes ------------------------------------------------------------------------------------


def _time(raw: Any) -> datetime | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None


def parse_chat(
    raw: Any,
    *,
    status: ChatStatus = IDLE,
    labels: dict[str, str] | None = None,
    last_error: str | None = None,
) -> Chat:
    """A chat of the 2025 AI-SDK API (id/created_at/updated_at/title) with the status and labels the
    backend keeps."""
    return Chat(
        id=ChatId(str(raw["id"])),
        title=str(raw.get("title") or ""),
        status=status,
        labels=labels or {},
        last_error=ChatFailure(message=last_error) if last_error else None,
        created_at=_time(raw.get("created_at")),
        updated_at=_time(raw.get("updated_at")),
    )


def parse_part(raw: Any) -> list[Part]:
    """An aisdk.Part as zero or more ``Part``s; a finished tool invocation becomes call + result."""
    if not isinstance(raw, dict):
        return []
    kind = str(raw.get("type", ""))
    if kind == "text":
        return [Part(type="text", text=str(raw.get("text") or ""))]
    if kind == "reasoning":
        return [Part(type="reasoning", text=str(raw.get("reasoning") or raw.get("text") or ""))]
    if kind == "step-start":
        return []
    if kind == "tool-invocation":
        invocation = raw.get("toolInvocation") or {}
        call_id = str(invocation.get("toolCallId") or "")
        name = str(invocation.get("toolName") or "")
        parts = [Part(type="tool-call", tool_call_id=call_id, tool_name=name, args=invocation.get("args"))]
        if invocation.get("state") == "result":
            result = invocation.get("result")
            parts.append(
                Part(
                    type="tool-result",
                    tool_call_id=call_id,
                    tool_name=name,
                    result=result,
                    is_error=_is_error(result),
                )
            )
        return parts
    if kind == "source":
        source = raw.get("source") or {}
        metadata = source.get("metadata") or {}
        return [Part(type="source", url=str(source.get("uri") or ""), title=str(metadata.get("title") or ""))]
    if kind == "file":
        return [Part(type="file", media_type=str(raw.get("mimeType") or ""))]
    return [Part(type=kind)]


def _is_error(result: Any) -> bool:
    """coderd reports a failed tool as the result ``{"error": "..."}``."""
    return isinstance(result, dict) and set(result) == {"error"}


def parse_message(raw: Any, position: int) -> Message:
    """An aisdk.Message as a ``Message`` whose id is its 1-based ``position`` in the chat."""
    parts: list[Part] = []
    for item in raw.get("parts") or ():
        parts.extend(parse_part(item))
    if not parts and raw.get("content"):
        parts.append(Part(type="text", text=str(raw["content"])))
    return Message(
        id=position,
        role=str(raw.get("role") or ""),
        content=tuple(parts),
        created_at=_time(raw.get("createdAt")),
    )


def parse_messages(raw: Any) -> list[Message]:
    """``GET /chats/{id}/messages`` (every message, oldest first) with positional ids 1, 2, …."""
    return [parse_message(item, position) for position, item in enumerate(raw, start=1)]


def user_message(
    message_id: str, created_at: str, text: str, files: Sequence[tuple[str, str]]
) -> dict[str, Any]:
    """The aisdk.Message of a user turn; ``files`` are (mime type, base64 data) sent inline."""
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    parts += [{"type": "file", "mimeType": mime, "data": data} for mime, data in files]
    return {"id": message_id, "createdAt": created_at, "role": "user", "content": text, "parts": parts}


# -- the streamed reply -----------------------------------------------------------------------------

_V1_LINE = re.compile(r"^([0-9a-z]):(.*)$", re.DOTALL)


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _v1_part(type_id: str, value: Any) -> WirePart | None:
    """One v1 part (aisdk-go ``stream.go`` type ids); ``None`` for parts the bridge does not show."""
    if type_id == "0" and isinstance(value, str):
        return WirePart("text", text=value)
    if type_id == "g" and isinstance(value, str):
        return WirePart("reasoning", text=value)
    body = _obj(value)
    call_id, name = str(body.get("toolCallId") or ""), str(body.get("toolName") or "")
    match type_id:
        case "b":
            return WirePart("tool-start", tool_call_id=call_id, tool_name=name)
        case "c":
            return WirePart("tool-delta", tool_call_id=call_id, text=str(body.get("argsTextDelta") or ""))
        case "9":
            return WirePart("tool-call", tool_call_id=call_id, tool_name=name, value=body.get("args"))
        case "a":
            return WirePart("tool-result", tool_call_id=call_id, value=body.get("result"))
        case "f":
            return WirePart("step-start", text=str(body.get("messageId") or ""))
        case "e":
            return WirePart("step-finish", value=body.get("finishReason"))
        case "d":
            return WirePart("finish", value=body.get("finishReason"))
        case "3":
            return WirePart("error", text=value if isinstance(value, str) else json.dumps(value))
        case "h":
            return WirePart("source", value=body)
        case "k":
            return WirePart("file", value=body)
    return None  # i/j (redacted reasoning, signatures), 2 (data), 8 (annotations), unknown ids


def parse_v1_line(line: str) -> WirePart | None:
    """A ``<TYPE_ID>:<JSON>`` line; ``None`` for unknown ids and for malformed or truncated lines."""
    match = _V1_LINE.match(line)
    if match is None:
        return None
    try:
        value = json.loads(match.group(2))
    except (ValueError, RecursionError):
        log.warning("skipping a malformed data-stream line: %.200s", line)
        return None
    return _v1_part(match.group(1), value)


def parse_sse_event(data: str) -> WirePart | None:
    """The JSON of one SSE ``data:`` event (aisdk-go v2, AI SDK UI message stream parts)."""
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        if data.strip() != "[DONE]":
            log.warning("skipping a malformed data-stream event: %.200s", data)
        return None
    body = _obj(body)
    call_id, name = str(body.get("toolCallId") or ""), str(body.get("toolName") or "")
    match body.get("type"):
        case "text-delta":
            return WirePart("text", text=str(body.get("delta") or ""))
        case "reasoning-delta":
            return WirePart("reasoning", text=str(body.get("delta") or ""))
        case "tool-input-start":
            return WirePart("tool-start", tool_call_id=call_id, tool_name=name)
        case "tool-input-delta":
            return WirePart("tool-delta", tool_call_id=call_id, text=str(body.get("inputTextDelta") or ""))
        case "tool-input-available":
            return WirePart("tool-call", tool_call_id=call_id, tool_name=name, value=body.get("input"))
        case "tool-output-available":
            return WirePart("tool-result", tool_call_id=call_id, value=body.get("output"))
        case "start-step":
            return WirePart("step-start")
        case "finish-step":
            return WirePart("step-finish")
        case "finish":
            return WirePart("finish", value=body.get("finishReason"))
        case "error":
            return WirePart("error", text=str(body.get("errorText") or "The model call failed"))
        case "source-url":
            return WirePart("source", value={"url": body.get("url"), "title": body.get("title")})
        case "file":
            return WirePart("file", value={"mimeType": body.get("mediaType") or body.get("mimeType")})
    return None  # start, *-start/-end block markers, data-*, unknown types


class DataStreamDecoder:
    """Lines of a reply body into ``WirePart``s, in whichever form the server writes.

    The form is taken from the ``Content-Type`` (``text/event-stream`` → SSE) and otherwise from the
    first non-empty line: ``data:`` starts SSE, anything else is v1 (reference section 6 warns that
    the aisdk-go version a build vendored is unknown). Feed lines without their newline.
    """

    def __init__(self, content_type: str = "") -> None:
        self.form: Literal["v1", "sse"] | None = "sse" if "text/event-stream" in content_type else None
        self._data: list[str] = []

    def feed(self, line: str) -> list[WirePart]:
        """The parts completed by one line."""
        line = line.removesuffix("\r")
        if self.form is None:
            if not line.strip():
                return []
            self.form = "sse" if line.startswith("data:") else "v1"
        if self.form == "v1":
            part = parse_v1_line(line) if line else None
            return [part] if part is not None else []
        if not line:
            return self._dispatch()
        if line.startswith("data:"):
            self._data.append(line[5:].removeprefix(" "))
        return []  # event:, id:, retry:, comments, and aisdk's bare "[DONE]"

    def close(self) -> list[WirePart]:
        """Parts of an SSE event the body ended without a blank line after."""
        return self._dispatch() if self.form == "sse" else []

    def _dispatch(self) -> list[WirePart]:
        data, self._data = "\n".join(self._data), []
        part = parse_sse_event(data) if data else None
        return [part] if part is not None else []


@dataclass
class _Tool:
    name: str
    args: Any = None
    result: Any = None
    done: bool = False


@dataclass
class ReplyAccumulator:
    """A reply's ``WirePart``s as stream events; each finished step becomes a ``MessageEvent``.

    ``next_id`` is the position the next stored step will take in the chat (the backend knows it
    from the message list before sending). A step cut short (interrupt, failure) is not stored by
    coderd, so it yields no ``MessageEvent``.
    """

    next_id: int
    _parts: list[Part | _Tool] = field(default_factory=list)
    _tools: dict[str, _Tool] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    _open: bool = False
    finished: bool = False
    """Whether the last part closed a step or the message, as a complete reply's last part does."""

    def feed(self, parts: Iterable[WirePart]) -> list[StreamEvent]:
        """The events that ``parts`` produce, in order."""
        events: list[StreamEvent] = []
        for part in parts:
            events.extend(self._one(part))
        return events

    def _one(self, part: WirePart) -> list[StreamEvent]:
        if part.kind not in ("step-finish", "finish", "error"):
            self.finished = False
        match part.kind:
            case "text" | "reasoning":
                self._append_text(part.kind, part.text)
                return [_delta(Part(type=part.kind, text=part.text))]
            case "tool-start":
                self._tool(part.tool_call_id, part.tool_name)
                return []
            case "tool-delta":
                tool = self._tool(part.tool_call_id, part.tool_name)
                return [
                    _delta(
                        Part(
                            type="tool-call",
                            tool_call_id=part.tool_call_id,
                            tool_name=tool.name,
                            args_delta=part.text,
                        )
                    )
                ]
            case "tool-call":
                tool = self._tool(part.tool_call_id, part.tool_name)
                tool.args = part.value
                call = Part(
                    type="tool-call", tool_call_id=part.tool_call_id, tool_name=tool.name, args=part.value
                )
                return [_delta(call)]
            case "tool-result":
                tool = self._tool(part.tool_call_id, part.tool_name)
                tool.result, tool.done = part.value, True
                result = Part(
                    type="tool-result",
                    tool_call_id=part.tool_call_id,
                    tool_name=tool.name,
                    result=part.value,
                    is_error=_is_error(part.value),
                )
                return [_delta(result)]
            case "step-start":
                self._parts, self._tools, self._open, self.finished = [], {}, True, False
                return []
            case "step-finish" | "finish":
                self.finished = True
                return self._finish_step()
            case "error":
                self.errors.append(part.text)
                return [ErrorEvent(message=part.text)]
            case "source":
                body = _obj(part.value)
                source = Part(
                    type="source", url=str(body.get("url") or ""), title=str(body.get("title") or "")
                )
                self._parts.append(source)
                return [_delta(source)]
            case "file":
                file = Part(type="file", media_type=str(_obj(part.value).get("mimeType") or ""))
                self._parts.append(file)
                return [_delta(file)]
        return []

    def _append_text(self, kind: str, delta: str) -> None:
        """Consecutive text deltas make one text part; a step keeps one reasoning part (as aisdk)."""
        if kind == "reasoning":
            index = next(
                (i for i, p in enumerate(self._parts) if isinstance(p, Part) and p.type == kind), None
            )
        else:
            last = self._parts[-1] if self._parts else None
            index = len(self._parts) - 1 if isinstance(last, Part) and last.type == kind else None
        if index is None:
            self._parts.append(Part(type=kind, text=delta))
        else:
            previous = self._parts[index]
            assert isinstance(previous, Part)
            self._parts[index] = previous.model_copy(update={"text": previous.text + delta})

    def _tool(self, call_id: str, name: str) -> _Tool:
        tool = self._tools.get(call_id)
        if tool is None:
            tool = self._tools[call_id] = _Tool(name)
            self._parts.append(tool)
        elif name:
            tool.name = name
        return tool

    def _finish_step(self) -> list[StreamEvent]:
        """v1 sends ``e:`` then ``d:`` per step: whichever comes first closes it, the other is a no-op."""
        if not (self._open or self._parts):
            return []
        content: list[Part] = []
        for item in self._parts:
            if isinstance(item, Part):
                content.append(item)
                continue
            call_id = next(k for k, v in self._tools.items() if v is item)
            content.append(Part(type="tool-call", tool_call_id=call_id, tool_name=item.name, args=item.args))
            if item.done:
                content.append(
                    Part(
                        type="tool-result",
                        tool_call_id=call_id,
                        tool_name=item.name,
                        result=item.result,
                        is_error=_is_error(item.result),
                    )
                )
        message = Message(id=self.next_id, role="assistant", content=tuple(content))
        self.next_id += 1
        self._parts, self._tools, self._open = [], {}, False
        return [MessageEvent(message=message)]


def _delta(part: Part) -> PartEvent:
    return PartEvent(role="assistant", part=part)
