"""G0a, the 2025 "AI chat" API on ``/api/v2/chats``: its JSON shapes and its streamed replies.

Reference section 6 (``shared/reference/coder-chats-api.md``), checked against coder/coder
``coderd/chat.go`` + ``codersdk/chat.go`` of 2025 and github.com/kylecarbs/aisdk-go ``stream.go``.
A reply is no socket and no status: POST /messages answers with the reply itself, a Vercel AI SDK
data stream, and coderd stores what the stream accumulated once each model call (a "step") ends.

``DataStreamOutput`` is the only G0a-specific part of a turn: it is a ``TurnOutput`` for the one
script player (``coder_agent.Turn``) that translates the G1-shaped parts the turn emits into
data-stream parts and, like aisdk's ``DataStreamAccumulator``, into one aisdk.Message per step.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

from bridge.sim.coder_agent import Fail, Step
from bridge.sim.coder_rules import ApiError
from bridge.sim.coder_state import JsonDict, SimChat, encode

StreamFormat = Literal["v1", "sse"]

DEFAULT_MODELS: Final = ("claude-3-7-sonnet-latest",)
NEW_CHAT_TITLE: Final = "New Chat"  # postChats inserts this title; the first message replaces it
_TITLE_RUNES: Final = 40  # strings.Truncate(..., 40): cut to 40 runes, no ellipsis
_DECODE_FAILED: Final = "Failed to decode chat message"

# aisdk-go v1 WriteDataStreamHeaders. The SSE form is the later aisdk-go (v2) writer's:
# text/event-stream, X-Vercel-AI-Data-Stream: v2, X-Accel-Buffering: no.
STREAM_HEADERS: Final[Mapping[StreamFormat, Mapping[str, str]]] = {
    "v1": {"Content-Type": "text/plain; charset=utf-8", "X-Vercel-AI-Data-Stream": "v1"},
    "sse": {
        "Content-Type": "text/event-stream",
        "X-Vercel-AI-Data-Stream": "v2",
        "X-Accel-Buffering": "no",
    },
}
# aisdk-go v2 Pipe ends a stream with a bare "[DONE]" (no "data: " prefix) after a successful pipe.
# UNCERTAIN: coderd pipes once per model call, so a v2 build may have sent it after every step; the
# simulator sends it once, at the end of the reply.
SSE_DONE: Final = "[DONE]\n\n"

# An item of a reply's queue: a chunk to write, a message to store once the chunks before it were
# written (coderd stores a step only after piping it), or None at the end of the reply.
ReplyItem = str | JsonDict | None


def chat_json(chat: SimChat) -> JsonDict:
    """codersdk.Chat of G0a: these four keys and nothing else (no status, no owner)."""
    return {"id": chat.id, "created_at": chat.created_at, "updated_at": chat.updated_at, "title": chat.title}


def title_from(message: JsonDict) -> str:
    """The title coderd sets from the first message: a model writes one of at most 40 characters.

    The simulator uses coderd's fallback, the message's ``content`` cut to 40 runes (its text parts
    when ``content`` is empty).
    """
    return prompt_of(message)[:_TITLE_RUNES] or NEW_CHAT_TITLE


def prompt_of(message: JsonDict) -> str:
    """The text a script answers: ``content``, else the text parts."""
    texts = [p["text"] for p in message.get("parts", ()) if p.get("type") == "text" and p.get("text")]
    return message.get("content") or " ".join(texts)


def parse_chat_message(raw: bytes, models: Sequence[str]) -> tuple[str, JsonDict]:
    """postChatMessages: decode CreateChatMessageRequest (400), then look the model up (400).

    Returns the model and the message as Go re-encodes it when storing (unknown keys dropped,
    empty optional keys omitted). ``thinking`` is decoded but unused by that handler.
    """
    if not raw.strip():
        raise ApiError(400, _DECODE_FAILED, "EOF")
    try:
        body = json.loads(raw)
    except ValueError as err:
        raise ApiError(400, _DECODE_FAILED, f"invalid character: {err}") from None
    if body is None:  # JSON null decodes into the zero request, which then names no model
        body = {}
    if not isinstance(body, dict):
        raise _type_error(body, "codersdk.CreateChatMessageRequest", "")
    model = _field(body, "model", str, "string") or ""
    _field(body, "thinking", bool, "bool")
    message = _message(_field(body, "message", dict, "aisdk.Message") or {})
    if model not in models:
        raise ApiError(400, "Model not found")
    return model, message


def _message(raw: Mapping[str, Any]) -> JsonDict:
    """aisdk.Message after a Go round trip: id, createdAt?, content, role, parts?, annotations?, ..."""
    message: JsonDict = {"id": _field(raw, "id", str, "string", "message.") or ""}
    if raw.get("createdAt") is not None:
        message["createdAt"] = raw["createdAt"]  # a json.RawMessage, passed through as sent
    message["content"] = _field(raw, "content", str, "string", "message.") or ""
    message["role"] = _field(raw, "role", str, "string", "message.") or ""
    for key, kind in (("parts", "[]aisdk.Part"), ("annotations", "[]interface {}")):
        items = _field(raw, key, list, kind, "message.")
        if items:
            message[key] = items if key == "annotations" else [_part(item) for item in items]
    attachments = _field(raw, "experimental_attachments", list, "[]aisdk.Attachment", "message.")
    if attachments:
        message["experimental_attachments"] = attachments
    return message


def _part(raw: Any) -> JsonDict:
    """aisdk.Part: every key but ``type`` is omitempty."""
    if not isinstance(raw, dict):
        raise _type_error(raw, "aisdk.Part", "message.parts")
    part: JsonDict = {"type": raw.get("type", "")}
    keys = ("text", "reasoning", "details", "toolInvocation", "source", "mimeType", "data")
    part.update((key, raw[key]) for key in keys if raw.get(key))
    return part


def _field(body: Mapping[str, Any], key: str, kind: type, go_type: str, prefix: str = "") -> Any:
    value = body.get(key)
    if value is not None and (not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))):
        raise _type_error(value, go_type, f"{prefix}{key}")
    return value


def _type_error(value: Any, go_type: str, field: str) -> ApiError:
    """encoding/json's UnmarshalTypeError text."""
    kinds = ((bool, "bool"), (int | float, "number"), (str, "string"), (list, "array"), (dict, "object"))
    kind = next((name for python, name in kinds if isinstance(value, python)), "null")
    where = f"Go struct field CreateChatMessageRequest.{field}" if field else "Go value"
    return ApiError(400, _DECODE_FAILED, f"json: cannot unmarshal {kind} into {where} of type {go_type}")


class DataStreamOutput:
    """One streamed reply: data-stream chunks and per-step messages, queued in order for the writer.

    Steps follow coderd's loop: every model call starts with ``f:`` (start step), a tool call is
    executed by the server inside the step (``9:`` call, then ``a:`` result), and the step ends with
    ``e:`` (finish step) and ``d:`` (finish message, one per model call: aisdk's Anthropic stream
    yields both); ``tool-calls`` makes coderd call the model again, ``stop`` ends the reply.
    """

    def __init__(self, stream_format: StreamFormat) -> None:
        self.items: asyncio.Queue[ReplyItem] = asyncio.Queue()
        self._format = stream_format
        self._message: JsonDict = {}
        self._tools: dict[str, JsonDict] = {}
        self._block: tuple[str, str] | None = None  # SSE: the open text/reasoning block (kind, id)
        self._steps = 0

    # -- the reply's frame ---------------------------------------------------------------------

    def begin_step(self) -> None:
        """A model call starts: Anthropic's message_start becomes ``f:{"messageId"}``."""
        message_id = f"msg_{uuid.uuid4().hex[:24]}"
        step_start = {"type": "step-start"}
        self._message = {"id": message_id, "content": "", "role": "assistant", "parts": [step_start]}
        self._tools = {}
        if self._format == "sse":
            if not self._steps:
                self._sse({"type": "start", "messageId": message_id})
            self._sse({"type": "start-step"})
        else:
            self._v1("f", {"messageId": message_id})
        self._steps += 1

    def finish(self, failure: Fail | None) -> None:
        """The script ended: close the last step with ``stop``, or end the body as a failure does.

        A failed model call makes aisdk's ``Pipe`` return an error and coderd return: the step's
        output is not stored and the v1 body just ends (no ``3:`` line: the accumulator rejects an
        ErrorStreamPart before it is written). The v2 ``Pipe`` writes an ``error`` part first.
        """
        if failure is None:
            self._end_step("stop")
            if self._format == "sse":
                self.items.put_nowait(SSE_DONE)
        elif self._format == "sse":
            self._sse({"type": "error", "errorText": failure.message})

    def close(self) -> None:
        self.items.put_nowait(None)

    # -- TurnOutput ----------------------------------------------------------------------------

    def part(self, role: str, body: JsonDict) -> None:
        """One G1-shaped part from the script player, as data-stream parts."""
        kind = body["type"]
        if kind == "text":
            self._text(body["text"])
        elif kind == "reasoning":
            self._reasoning(body["text"])
        elif kind == "tool-call" and "args_delta" in body:
            self._tool_delta(body["tool_call_id"], body["tool_name"], body["args_delta"])
        elif kind == "tool-call":
            self._tool_call(body["tool_call_id"], body["tool_name"], body["args"])
        elif kind == "tool-result":
            result = {"error": body["result"]} if body.get("is_error") else body["result"]
            self._tool_result(body["tool_call_id"], result)

    def persist(self, role: str, content: list[JsonDict]) -> None:
        """G1 persists at a tool call and after its result; in G0a the result ends the model call."""
        if role == "tool":
            self._end_step("tool-calls")
            self.begin_step()

    def retry(self, payload: JsonDict) -> None:
        """aisdk has no retry part: the provider SDK retries silently."""

    async def await_client(self, call: JsonDict) -> None:
        """coderd runs every tool of this API itself: no client tool, no waiting for one."""
        raise RuntimeError("the 2025 AI-SDK chat API has no client-executed tools")

    def store_file(self, name: str, media_type: str, data: bytes) -> str:
        """The 2025 API stores no files: its agent has no ``attach_file`` (nor plan mode to propose a
        plan in)."""
        raise RuntimeError("the 2025 AI-SDK chat API has no agent-attached files")

    def spawn(self, title: str, prompt: str, steps: Sequence[Step]) -> str:
        """The 2025 API has no sub-agents."""
        raise RuntimeError("the 2025 AI-SDK chat API has no sub-agents")

    async def await_child(self, chat_id: str) -> JsonDict:
        raise RuntimeError("the 2025 AI-SDK chat API has no sub-agents")

    # -- parts ---------------------------------------------------------------------------------

    def _text(self, delta: str) -> None:
        self._message["content"] += delta
        parts = self._message["parts"]
        if parts[-1]["type"] == "text":
            parts[-1]["text"] += delta
        else:
            parts.append({"type": "text", "text": delta})
        self._delta("0", "text", delta)

    def _reasoning(self, delta: str) -> None:
        """The accumulator keeps one reasoning part per message and appends to it."""
        parts = self._message["parts"]
        reasoning = next((p for p in parts if p["type"] == "reasoning"), None)
        if reasoning is None:
            reasoning = {"type": "reasoning", "reasoning": ""}
            parts.append(reasoning)
        reasoning["reasoning"] += delta
        self._delta("g", "reasoning", delta)

    def _delta(self, type_id: str, block: str, delta: str) -> None:
        """v1: one line per delta; SSE: deltas inside ``<block>-start``/``<block>-end`` with an id."""
        if self._format == "v1":
            self._v1(type_id, delta)
            return
        if self._block is None or self._block[0] != block:
            self._end_block()
            self._block = (block, f"{block}-{uuid.uuid4().hex[:8]}")
            self._sse({"type": f"{block}-start", "id": self._block[1]})
        self._sse({"type": f"{block}-delta", "id": self._block[1], "delta": delta})

    def _end_block(self) -> None:
        if self._block is not None:
            self._sse({"type": f"{self._block[0]}-end", "id": self._block[1]})
        self._block = None

    def _invocation(self, call_id: str, name: str) -> JsonDict:
        """The step's tool-invocation part for a call, created (``partial-call``) at its first sign."""
        if call_id not in self._tools:
            self._end_block()
            invocation = {"state": "partial-call", "toolCallId": call_id, "toolName": name, "args": ""}
            self._tools[call_id] = invocation
            self._message["parts"].append({"type": "tool-invocation", "toolInvocation": invocation})
            start = {"toolCallId": call_id, "toolName": name}
            if self._format == "v1":
                self._v1("b", start)
            else:
                self._sse({"type": "tool-input-start", **start})
        return self._tools[call_id]

    def _tool_delta(self, call_id: str, name: str, delta: str) -> None:
        self._invocation(call_id, name)["args"] += delta
        if self._format == "v1":
            self._v1("c", {"toolCallId": call_id, "argsTextDelta": delta})
        else:
            self._sse({"type": "tool-input-delta", "toolCallId": call_id, "inputTextDelta": delta})

    def _tool_call(self, call_id: str, name: str, args: JsonDict) -> None:
        self._invocation(call_id, name).update(state="call", args=args)
        call = {"toolCallId": call_id, "toolName": name}
        if self._format == "v1":
            self._v1("9", {**call, "args": args})
        else:
            self._sse({"type": "tool-input-available", **call, "input": args})

    def _tool_result(self, call_id: str, result: Any) -> None:
        invocation = self._tools[call_id]
        invocation["state"] = "result"
        if result is not None:
            invocation["result"] = result  # ToolInvocation.Result is omitempty
        if self._format == "v1":
            self._v1("a", {"toolCallId": call_id, "result": result})
        else:
            self._sse({"type": "tool-output-available", "toolCallId": call_id, "output": result})

    def _end_step(self, reason: str) -> None:
        """``e:`` and ``d:``, then the step's message is stored (acc.Messages() after the pipe)."""
        self._end_block()
        # aisdk's Anthropic stream reports output tokens only on a tool_use stop; usage fields are
        # pointers, so the rest are null.
        tokens = len(self._message["content"].split()) + 20 * len(self._tools)
        usage = {"promptTokens": None, "completionTokens": tokens if reason == "tool-calls" else None}
        if self._format == "v1":
            self._v1("e", {"finishReason": reason, "usage": usage, "isContinued": False})
            self._v1("d", {"finishReason": reason, "usage": usage})
        else:
            self._sse({"type": "finish-step"})
            if reason == "stop":
                self._sse({"type": "finish", "finishReason": reason})
        self.items.put_nowait(self._message)

    def _v1(self, type_id: str, value: Any) -> None:
        """Data stream protocol v1: ``<TYPE_ID>:<JSON>\\n``, flushed per part."""
        self.items.put_nowait(f"{type_id}:{encode(value)}\n")

    def _sse(self, event: JsonDict) -> None:
        """v2 ``formatJSONPart`` re-marshals each part through a map, so its keys come out sorted."""
        self.items.put_nowait(f"data: {encode(dict(sorted(event.items())))}\n\n")
