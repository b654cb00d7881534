"""Coder stream parsers on hostile input: never a crash, a log line for what is dropped, and the
well-formed events of a batch all kept (every framing, G1 and G2 event parsers, the AI-SDK stream)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.coder import experimental_wire, v2_wire
from bridge.coder.aisdk_wire import DataStreamDecoder, ReplyAccumulator
from bridge.coder.framing import FrameDecoder, RawEvent
from bridge.coder.types import (
    ActionRequiredEvent,
    ClientCall,
    ErrorEvent,
    MessageEvent,
    PartEvent,
    StatusEvent,
    StreamEvent,
)

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=25,
)
EVENT_TYPES = [
    "message_part",
    "message",
    "status",
    "error",
    "retry",
    "queue_update",
    "action_required",
    "diff_status_change",
]
PARSERS: list[Callable[[RawEvent], StreamEvent | None]] = [
    experimental_wire.parse_stream_event,
    v2_wire.parse_stream_event,
]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def logged() -> Iterator[list[logging.LogRecord]]:
    """The bridge.coder log records emitted inside the block (a fixture would outlive examples)."""
    handler = _Records()
    logger = logging.getLogger("bridge.coder")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@st.composite
def valid_events(draw: st.DrawFn) -> tuple[RawEvent, type[StreamEvent]]:
    """A well-formed ChatStreamEvent of a kind the relay renders, with the domain type it becomes."""
    chat = "7e8d586f-e3a8-4f8b-af20-c0879b7d2c1b"
    text = draw(st.text(max_size=50))
    kind = draw(st.sampled_from(["part", "message", "status", "error"]))
    if kind == "part":
        part = {"type": "text", "text": text}
        return {
            "type": "message_part",
            "chat_id": chat,
            "message_part": {"role": "assistant", "part": part},
        }, (PartEvent)
    if kind == "message":
        message = {
            "id": draw(st.integers(1, 2**53)),
            "chat_id": chat,
            "role": draw(st.sampled_from(["user", "assistant"])),
            "content": [{"type": "text", "text": text}],
            "created_at": "2026-11-23T14:00:00Z",
        }
        return {"type": "message", "chat_id": chat, "message": message}, MessageEvent
    if kind == "status":
        return {"type": "status", "chat_id": chat, "status": {"status": "running"}}, StatusEvent
    return {"type": "error", "chat_id": chat, "error": {"message": text or "boom"}}, ErrorEvent


def _mangle(event: RawEvent, data: st.DataObject) -> RawEvent:
    """The event with one member replaced by arbitrary JSON, or removed, or its type made unknown."""
    broken = dict(event)
    key = data.draw(st.sampled_from(sorted(broken)))
    action = data.draw(st.sampled_from(["replace", "remove", "unknown-type"]))
    if action == "replace":
        broken[key] = data.draw(json_values)
    elif action == "remove":
        del broken[key]
    else:
        broken["type"] = data.draw(st.text(max_size=12).filter(lambda t: t not in EVENT_TYPES))
    return broken


@PROPERTY
@given(frame=st.text(max_size=300) | st.binary(max_size=300))
def test_any_frame_decodes_without_raising(frame: str | bytes) -> None:
    """Whatever a socket delivers, the frame decoder returns a list and never raises."""
    assert isinstance(FrameDecoder().decode(frame), list)


@PROPERTY
@given(document=json_values)
def test_any_json_document_decodes_and_drops_with_a_log_line(document: Any) -> None:
    """Any JSON value decodes; what it drops (other than a ping) leaves a WARNING behind."""
    with logged() as records:
        events = FrameDecoder().decode(json.dumps(document))
    is_ping = isinstance(document, dict) and document.get("type") == "ping" and "kind" not in document
    empty = document == [] or (
        isinstance(document, dict) and document.get("type") == "data" and document.get("data") == []
    )
    if not events and not is_ping and not empty:
        assert any(r.levelno >= logging.WARNING for r in records), "a dropped frame leaves a warning"


@PROPERTY
@given(raw=st.dictionaries(st.text(max_size=10), json_values, max_size=6), parser=st.sampled_from(PARSERS))
def test_any_event_object_parses_or_is_skipped(raw: RawEvent, parser: Callable[[RawEvent], Any]) -> None:
    """Any object as a stream event becomes a domain event or None, never an exception."""
    result = parser(raw)
    assert result is None or isinstance(result, StreamEvent.__args__)  # type: ignore[attr-defined]


@PROPERTY
@given(data=st.data(), parser=st.sampled_from(PARSERS))
def test_mangled_known_event_is_skipped_with_a_log_line(
    data: st.DataObject, parser: Callable[[RawEvent], StreamEvent | None]
) -> None:
    """A known event with a member replaced or removed parses or is skipped with a log line."""
    event, _ = data.draw(valid_events())
    broken = _mangle(event, data)
    with logged() as records:
        result = parser(broken)
    if result is None:
        assert records, "a dropped event leaves a log line"


@PROPERTY
@given(
    data=st.data(),
    framing=st.sampled_from(["bare", "envelope"]),
    parser=st.sampled_from(PARSERS),
)
def test_well_formed_events_survive_garbage_in_the_same_batch(
    data: st.DataObject, framing: str, parser: Callable[[RawEvent], StreamEvent | None]
) -> None:
    """In a batch mixing good events with mangled ones and non-objects, every good event comes through."""
    good = data.draw(st.lists(valid_events(), min_size=1, max_size=8))
    batch: list[Any] = []
    for event, _ in good:
        batch.extend(data.draw(st.lists(json_values.filter(lambda v: not isinstance(v, dict)), max_size=2)))
        batch.append(event)
        if data.draw(st.booleans()):
            batch.append(_mangle(event, data) | {"type": "not-an-event"})
    frame = json.dumps(batch if framing == "bare" else {"type": "data", "data": batch})
    parsed = [parser(raw) for raw in FrameDecoder().decode(frame) if not isinstance(raw, ErrorEvent)]
    kept = [e for e in parsed if e is not None]
    assert [type(e) for e in kept] == [kind for _, kind in good]


@PROPERTY
@given(data=st.data())
def test_truncated_frame_is_dropped_and_the_next_one_still_decodes(data: st.DataObject) -> None:
    """A frame cut anywhere is skipped with a warning; the connection's next frame decodes normally."""
    events = [event for event, _ in data.draw(st.lists(valid_events(), min_size=1, max_size=4))]
    frame = json.dumps(events)
    cut = data.draw(st.integers(0, len(frame) - 1))
    decoder = FrameDecoder()
    with logged() as records:
        assert decoder.decode(frame[:cut]) == []
    assert any(r.levelno == logging.WARNING for r in records)
    assert decoder.decode(frame) == events


def test_huge_and_deeply_nested_frames_do_not_crash() -> None:
    """A frame of megabytes decodes; one nested deeper than Python's stack is skipped, not fatal."""
    text = "x" * 4_000_000
    part = {"role": "assistant", "part": {"type": "text", "text": text}}
    frame = json.dumps([{"type": "message_part", "message_part": part}] * 2)
    events = [experimental_wire.parse_stream_event(raw) for raw in FrameDecoder().decode(frame)]  # type: ignore[arg-type]
    assert [e.part.text for e in events if isinstance(e, PartEvent)] == [text, text]
    assert FrameDecoder().decode("[" * 200_000 + "]" * 200_000) == []
    assert FrameDecoder().decode('{"type":"data","data":' + "[" * 200_000) == []


@PROPERTY
@given(lines=st.lists(st.text(max_size=80), max_size=20), sse=st.booleans())
def test_any_data_stream_lines_decode_without_raising(lines: list[str], sse: bool) -> None:
    """The AI-SDK reply body, in either form, never makes the decoder or the accumulator raise."""
    decoder = DataStreamDecoder("text/event-stream" if sse else "")
    accumulator = ReplyAccumulator(next_id=2)
    for line in lines:
        accumulator.feed(decoder.feed(line))
    accumulator.feed(decoder.close())


@PROPERTY
@given(
    deltas=st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=6),
    junk=st.lists(st.text(max_size=40).filter(lambda t: not _is_text(t)), max_size=6),
    sse=st.booleans(),
)
def test_text_deltas_survive_garbage_lines(deltas: list[str], junk: list[str], sse: bool) -> None:
    """Malformed or unknown lines between text parts drop only themselves; the reply text is whole."""
    decoder = DataStreamDecoder("text/event-stream" if sse else "")
    accumulator = ReplyAccumulator(next_id=2)
    events: list[StreamEvent] = []
    for index, delta in enumerate(deltas):
        if sse:
            lines = [f"data: {json.dumps({'type': 'text-delta', 'id': 't', 'delta': delta})}", ""]
            bad = junk[index] if index < len(junk) else ""
            lines = [f"data: {bad}", "", *lines] if bad.strip() else lines
        else:
            lines = [f"0:{json.dumps(delta)}"]
            if index < len(junk) and junk[index].strip():
                lines.insert(0, "0:" + junk[index])
        for line in lines:
            events.extend(accumulator.feed(decoder.feed(line)))
    events.extend(accumulator.feed(decoder.close()))
    streamed = "".join(e.part.text for e in events if isinstance(e, PartEvent) and e.part.type == "text")
    assert streamed == "".join(deltas)


def _is_text(junk: str) -> bool:
    """Whether a junk line would in fact be a text part (a JSON string, or a text-delta object)."""
    try:
        value = json.loads(junk)
    except (ValueError, RecursionError):
        return False
    return isinstance(value, str) or (isinstance(value, dict) and value.get("type") == "text-delta")


@PROPERTY
@given(
    names=st.lists(st.text(min_size=1, max_size=12).filter(lambda t: t not in EVENT_TYPES), max_size=5),
    parser=st.sampled_from(PARSERS),
)
def test_unknown_event_types_are_logged_once_each_and_skipped(
    names: list[str], parser: Callable[[RawEvent], StreamEvent | None]
) -> None:
    """A newer Coder's event types are skipped; each is said at most once at INFO, never louder."""
    with logged() as records:
        for name in names * 3:
            assert parser({"type": f"new-{name}", "chat_id": "c"}) is None
    loud = [r for r in records if r.levelno >= logging.INFO]
    assert all(r.levelno == logging.INFO for r in loud)
    assert len(loud) <= len(set(names))


@PROPERTY
@given(payload=json_values, parser=st.sampled_from(PARSERS))
def test_action_required_of_any_shape_parses_or_is_skipped(
    payload: Any, parser: Callable[[RawEvent], StreamEvent | None]
) -> None:
    """The newest G2's action_required event with any payload: the tools it names, or skipped."""
    result = parser({"type": "action_required", "chat_id": "c", "action_required": payload})
    assert result is None or isinstance(result, ActionRequiredEvent)


def test_action_required_names_the_waiting_tools() -> None:
    """The tool calls an action_required event lists become the names the thread shows."""
    calls = [{"tool_call_id": "1", "tool_name": "browser"}, {"tool_call_id": "2"}]
    event = v2_wire.parse_stream_event({"type": "action_required", "action_required": {"tool_calls": calls}})
    assert event == ActionRequiredEvent(calls=(ClientCall(tool_call_id="1", tool_name="browser"),))
    assert event.tool_names == ("browser",)


def test_action_required_reads_arguments_given_as_text() -> None:
    """A call's arguments as JSON text (as Coder's CLI reads them) become the object they spell."""
    calls = [{"tool_call_id": "1", "tool_name": "ask_user_question", "args": '{"questions": []}'}]
    event = v2_wire.parse_stream_event({"type": "action_required", "action_required": {"tool_calls": calls}})
    assert isinstance(event, ActionRequiredEvent)
    assert event.calls[0].args == {"questions": []}
