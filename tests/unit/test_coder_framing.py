"""Decoding Coder WebSocket frames in every framing Coder has used (reference, sections 4.2, 4.8)."""

from __future__ import annotations

import json
import logging

import pytest

from bridge.coder.framing import FrameDecoder, Framing
from bridge.coder.types import ErrorEvent

STATUS = {"type": "status", "chat_id": "c1", "status": {"status": "running"}}
PART = {
    "type": "message_part",
    "chat_id": "c1",
    "message_part": {"role": "assistant", "part": {"type": "text", "text": "Hel"}},
}
WATCH = {"kind": "status_change", "chat": {"id": "c1", "status": "running"}}


def decode(*frames: str | bytes) -> tuple[FrameDecoder, list[object]]:
    decoder = FrameDecoder()
    events: list[object] = []
    for frame in frames:
        events.extend(decoder.decode(frame))
    return decoder, events


def test_bare_array_with_trailing_newline_is_a_batch() -> None:
    """A bare array frame (later G1 builds end it with a newline) is one batch, framing 'bare'."""
    decoder, events = decode(json.dumps([STATUS, PART]) + "\n")
    assert events == [STATUS, PART]
    assert decoder.framing is Framing.BARE


def test_envelope_with_array_is_a_batch() -> None:
    """A data envelope with an array is one batch, framing 'envelope'."""
    decoder, events = decode(json.dumps({"type": "data", "data": [STATUS, PART]}))
    assert events == [STATUS, PART]
    assert decoder.framing is Framing.ENVELOPE


def test_envelope_with_single_object_is_a_batch_of_one() -> None:
    """The earliest handler sent one event per envelope, as an object."""
    _, events = decode(json.dumps({"type": "data", "data": STATUS}))
    assert events == [STATUS]


@pytest.mark.parametrize("ping", ['{"type":"ping","data":null}', '{"type":"ping"}'])
def test_ping_envelopes_yield_nothing(ping: str) -> None:
    """Ping envelopes, with or without data, are ignored but still identify the framing."""
    decoder, events = decode(ping)
    assert events == []
    assert decoder.framing is Framing.ENVELOPE


def test_error_envelope_becomes_error_event() -> None:
    """An error envelope becomes an ErrorEvent joining message and detail like Coder's SDK."""
    frame = {
        "type": "error",
        "data": {
            "message": "Chat streaming is not available.",
            "detail": "Chat stream state is not configured.",
        },
    }
    _, events = decode(json.dumps(frame))
    assert events == [
        ErrorEvent(
            message="Chat streaming is not available.: Chat stream state is not configured.",
            error_kind="stream",
        )
    ]


def test_error_envelope_without_detail_or_data() -> None:
    """An error envelope missing detail, or data altogether, still yields an ErrorEvent."""
    _, events = decode('{"type":"error","data":{"message":"boom"}}', '{"type":"error"}')
    assert [e.message for e in events if isinstance(e, ErrorEvent)] == [
        "boom",
        "Coder reported a stream error",
    ]


def test_watch_frames_in_both_framings() -> None:
    """Watch events arrive enveloped one per frame, or as bare objects with a top-level 'kind'."""
    enveloped, events_a = decode('{"type":"ping","data":null}', json.dumps({"type": "data", "data": WATCH}))
    bare, events_b = decode(json.dumps(WATCH) + "\n")
    assert events_a == events_b == [WATCH]
    assert enveloped.framing is Framing.ENVELOPE
    assert bare.framing is Framing.BARE


def test_first_frame_decides_framing_but_later_shapes_still_decode() -> None:
    """The framing is the first frame's; a later frame of the other framing is still accepted."""
    decoder, events = decode(json.dumps([STATUS]), json.dumps({"type": "data", "data": [PART]}))
    assert decoder.framing is Framing.BARE
    assert events == [STATUS, PART]


def test_binary_frames_are_decoded_as_utf8() -> None:
    """A frame sent as binary is decoded like text."""
    _, events = decode(json.dumps([STATUS]).encode())
    assert events == [STATUS]


@pytest.mark.parametrize(
    "frame",
    [
        '[{"type":"status"',  # truncated
        "not json at all",
        "",
        "42",
        '"text"',
        '{"type":"data","data":7}',
        '{"type":"data"}',
        '{"type":"surprise","data":[]}',
        '{"chat_id":"c1"}',
    ],
)
def test_malformed_or_unexpected_frames_are_skipped(frame: str) -> None:
    """Bad JSON and unknown shapes yield no events, don't raise and don't fix the framing."""
    decoder, events = decode(frame)
    assert events == []
    assert decoder.framing is None


def test_non_object_items_in_a_batch_are_dropped() -> None:
    """Items of a batch that are not objects are skipped; the rest survive."""
    _, events = decode(json.dumps([1, STATUS, "x", None, PART]))
    assert events == [STATUS, PART]


def test_skipped_frames_are_logged_truncated(caplog: pytest.LogCaptureFixture) -> None:
    """A rejected frame is logged as a warning with at most ~200 characters of it."""
    frame = "x" * 5000
    with caplog.at_level(logging.WARNING, logger="bridge.coder.framing"):
        decode(frame)
    assert len(caplog.records) == 1
    assert len(caplog.records[0].getMessage()) < 300
