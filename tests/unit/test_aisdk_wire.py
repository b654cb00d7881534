"""G0a wire parsing: data-stream v1 lines, the SSE form, and aisdk.Message with positional ids."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bridge.coder.aisdk_wire import (
    DataStreamDecoder,
    ReplyAccumulator,
    WirePart,
    parse_chat,
    parse_messages,
    parse_sse_event,
    parse_v1_line,
    user_message,
)
from bridge.coder.types import ChatPhase, ErrorEvent, Message, MessageEvent, Part, PartEvent

CALL = {"toolCallId": "call_1", "toolName": "coder_list_workspaces"}


def line(type_id: str, value: Any) -> str:
    return f"{type_id}:{json.dumps(value)}"


@pytest.mark.parametrize(
    ("type_id", "value", "expected"),
    [
        ("0", "hi", WirePart("text", text="hi")),
        ("g", "hmm", WirePart("reasoning", text="hmm")),
        ("b", CALL, WirePart("tool-start", tool_call_id="call_1", tool_name="coder_list_workspaces")),
        ("c", {"toolCallId": "call_1", "argsTextDelta": '{"o'}, WirePart("tool-delta", '{"o', "call_1")),
        (
            "9",
            {**CALL, "args": {"owner": "me"}},
            WirePart("tool-call", "", "call_1", CALL["toolName"], {"owner": "me"}),
        ),
        (
            "a",
            {"toolCallId": "call_1", "result": [1]},
            WirePart("tool-result", tool_call_id="call_1", value=[1]),
        ),
        ("f", {"messageId": "m1"}, WirePart("step-start", text="m1")),
        (
            "e",
            {"finishReason": "tool-calls", "usage": {}, "isContinued": False},
            WirePart("step-finish", value="tool-calls"),
        ),
        ("d", {"finishReason": "stop", "usage": {}}, WirePart("finish", value="stop")),
        ("3", "boom", WirePart("error", text="boom")),
        (
            "h",
            {"sourceType": "url", "url": "https://x"},
            WirePart("source", value={"sourceType": "url", "url": "https://x"}),
        ),
        (
            "k",
            {"data": "AA==", "mimeType": "image/png"},
            WirePart("file", value={"data": "AA==", "mimeType": "image/png"}),
        ),
    ],
)
def test_every_shown_v1_type_id(type_id: str, value: Any, expected: WirePart) -> None:
    """Each data-stream v1 type id the bridge shows becomes its WirePart."""
    assert parse_v1_line(line(type_id, value)) == expected


@pytest.mark.parametrize(
    "text",
    [
        'i:{"data":"x"}',
        'j:{"signature":"s"}',
        "2:[1]",
        '8:[{"a":1}]',
        'z:"future"',
        '0:"trunc',
        "",
        "no colon",
        "00:1",
    ],
)
def test_unshown_unknown_and_truncated_v1_lines_are_skipped(text: str) -> None:
    """Redacted reasoning, data, annotations, unknown ids and broken lines yield nothing."""
    assert parse_v1_line(text) is None


def test_sse_events() -> None:
    """The SSE form's UI-message-stream parts map onto the same WireParts; markers are skipped."""
    assert parse_sse_event('{"type":"text-delta","id":"t","delta":"hi"}') == WirePart("text", text="hi")
    assert parse_sse_event('{"type":"reasoning-delta","delta":"r"}') == WirePart("reasoning", text="r")
    assert parse_sse_event(
        json.dumps({"type": "tool-input-available", **CALL, "input": {"a": 1}})
    ) == WirePart("tool-call", "", "call_1", CALL["toolName"], {"a": 1})
    assert parse_sse_event('{"type":"tool-output-available","toolCallId":"c","output":2}') == WirePart(
        "tool-result", tool_call_id="c", value=2
    )
    assert parse_sse_event('{"type":"error","errorText":"bad"}') == WirePart("error", text="bad")
    assert parse_sse_event('{"finishReason":"stop","type":"finish"}') == WirePart("finish", value="stop")
    for skipped in ('{"type":"start","messageId":"m"}', '{"type":"text-start","id":"t"}', "[DONE]", "{bad"):
        assert parse_sse_event(skipped) is None


def test_decoder_detects_the_form_from_the_first_line_or_header() -> None:
    """``data:`` lines make SSE (events end at blank lines); other lines are v1."""
    v1 = DataStreamDecoder("text/plain; charset=utf-8")
    assert v1.feed('0:"a"') == [WirePart("text", text="a")]
    assert v1.form == "v1"
    sse = DataStreamDecoder()
    assert sse.feed('data: {"type":"text-delta","delta":"a"}') == []
    assert sse.feed("") == [WirePart("text", text="a")]
    assert sse.form == "sse"
    assert sse.feed("[DONE]") == []
    assert sse.feed("") == []
    by_header = DataStreamDecoder("text/event-stream")
    assert by_header.feed('data: {"type":"finish-step"}') == []
    assert by_header.close() == [WirePart("step-finish")]


def feed_v1(accumulator: ReplyAccumulator, *lines: str) -> list[Any]:
    decoder = DataStreamDecoder()
    return accumulator.feed(p for text in lines for p in decoder.feed(text))


def test_accumulator_turns_steps_into_messages_with_positional_ids() -> None:
    """Deltas become PartEvents; each finished step one MessageEvent numbered from next_id."""
    accumulator = ReplyAccumulator(next_id=2)
    events = feed_v1(
        accumulator,
        line("f", {"messageId": "m1"}),
        line("0", "Let "),
        line("0", "me."),
        line("b", CALL),
        line("c", {"toolCallId": "call_1", "argsTextDelta": "{}"}),
        line("9", {**CALL, "args": {}}),
        line("a", {"toolCallId": "call_1", "result": {"error": "nope"}}),
        line("e", {"finishReason": "tool-calls"}),
        line("d", {"finishReason": "tool-calls"}),
        line("f", {"messageId": "m2"}),
        line("g", "think"),
        line("0", "Done."),
        line("e", {"finishReason": "stop"}),
        line("d", {"finishReason": "stop"}),
    )
    deltas = [e.part for e in events if isinstance(e, PartEvent)]
    assert [p.type for p in deltas] == [
        "text",
        "text",
        "tool-call",
        "tool-call",
        "tool-result",
        "reasoning",
        "text",
    ]
    assert deltas[2].args_delta == "{}"
    assert deltas[2].tool_name == CALL["toolName"]
    assert deltas[4].is_error
    messages = [e.message for e in events if isinstance(e, MessageEvent)]
    assert [m.id for m in messages] == [2, 3]
    assert messages[0].text == "Let me."
    assert [p.type for p in messages[0].content] == ["text", "tool-call", "tool-result"]
    assert [(p.type, p.text) for p in messages[1].content] == [("reasoning", "think"), ("text", "Done.")]
    assert accumulator.finished
    assert not accumulator.errors


def test_accumulator_reports_errors_and_unfinished_steps() -> None:
    """A ``3:`` line is an ErrorEvent; a body cut mid-step leaves the reply unfinished, unstored."""
    accumulator = ReplyAccumulator(next_id=1)
    events = feed_v1(accumulator, line("f", {"messageId": "m"}), line("0", "x"), line("3", "overloaded"))
    assert events[-1] == ErrorEvent(message="overloaded")
    assert not any(isinstance(e, MessageEvent) for e in events)
    assert accumulator.errors == ["overloaded"]
    assert not accumulator.finished


def test_stored_messages_get_positions_and_match_the_live_shape() -> None:
    """GET /messages items become Messages 1..n; a result invocation is a call plus a result."""
    raw = [
        user_message("u1", "2025-05-01T12:00:00Z", "hi", [("image/png", "AA==")]),
        {
            "id": "msg_1",
            "role": "assistant",
            "content": "Let me.",
            "parts": [
                {"type": "step-start"},
                {"type": "reasoning", "reasoning": "r"},
                {"type": "text", "text": "Let me."},
                {
                    "type": "tool-invocation",
                    "toolInvocation": {
                        "state": "result",
                        "toolCallId": "c",
                        "toolName": "t",
                        "args": {},
                        "result": 1,
                    },
                },
                {"type": "source", "source": {"uri": "https://x", "metadata": {"title": "X"}}},
                {"type": "mystery"},
            ],
        },
        {"id": "old", "role": "assistant", "content": "plain"},
    ]
    user, assistant, plain = parse_messages(raw)
    assert (user.id, user.role, user.text, user.created_at is not None) == (1, "user", "hi", True)
    assert user.content[1] == Part(type="file", media_type="image/png")
    assert assistant.id == 2
    assert [p.type for p in assistant.content] == [
        "reasoning",
        "text",
        "tool-call",
        "tool-result",
        "source",
        "mystery",
    ]
    assert assistant.content[3].result == 1
    assert assistant.content[4].title == "X"
    assert plain == Message(id=3, role="assistant", content=(Part(type="text", text="plain"),))


def test_chat_has_the_status_and_labels_given() -> None:
    """G0a chats carry four keys; status and labels come from the backend's memory."""
    chat = parse_chat({"id": "c", "title": "t", "created_at": "2025-05-01T12:00:00Z", "updated_at": "x"})
    assert (chat.id, chat.title, chat.status.phase, chat.labels, chat.updated_at) == (
        "c",
        "t",
        ChatPhase.IDLE,
        {},
        None,
    )
