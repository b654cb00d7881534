"""Reading G1 (experimental) and G2 (promoted) Chats API JSON and Coder error answers into our types."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime
from typing import Any

import pytest
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosedError, InvalidStatus, InvalidURI
from websockets.frames import Close
from websockets.http11 import Response

from bridge.coder import v2_wire
from bridge.coder.backoff import Backoff
from bridge.coder.errors import (
    CoderAuthError,
    CoderError,
    CoderNotFound,
    CoderRejected,
    CoderUnavailable,
    CoderUnreadable,
    Validation,
)
from bridge.coder.experimental_wire import (
    decode,
    parse_chat,
    parse_diff,
    parse_message,
    parse_send_result,
    parse_status,
    parse_stream_event,
    parse_user,
    parse_watch_event,
)
from bridge.coder.rest import error_from_response
from bridge.coder.stream import classify_failure, websocket_url
from bridge.coder.types import (
    ChatFailure,
    ChatPhase,
    ErrorEvent,
    ErrorKind,
    MessageEvent,
    Part,
    PartEvent,
    QueueEvent,
    RetryEvent,
    StatusEvent,
    WatchKind,
)

ZERO_KEYS = {
    "text": "",
    "url": "",
    "media_type": "",
    "file_name": "",
    "start_line": 0,
    "end_line": 0,
    "content": "",
    "context_file_path": "",
}


def wire_part(**fields: Any) -> dict[str, Any]:
    """A part as G1 sends it: every shared key present with its zero value unless set."""
    return {**ZERO_KEYS, **fields}


def wire_chat(**fields: Any) -> dict[str, Any]:
    chat: dict[str, Any] = {
        "id": "c1",
        "owner_id": "u1",
        "root_chat_id": "c1",
        "last_model_config_id": "m1",
        "title": "Fix tests",
        "status": "waiting",
        "last_error": None,
        "created_at": "2025-07-17T00:00:00.123456Z",
        "updated_at": "2025-07-17T00:00:01Z",
        "archived": False,
        "pin_order": 0,
        "mcp_server_ids": [],
        "labels": {"source": "slack"},
        "has_unread": False,
    }
    return {**chat, **fields}


def wire_message(id: int, role: str = "assistant", *parts: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": id,
        "chat_id": "c1",
        "created_at": "2025-07-17T00:00:05Z",
        "role": role,
        "content": list(parts) or [wire_part(type="text", text=f"message {id}")],
    }


# Chats -------------------------------------------------------------------------------------------


def test_chat_parses_seed_example_with_explicit_nulls() -> None:
    """The seed doc's chat, which prints unset pointers as null, parses like the omitted form."""
    seed = wire_chat(workspace_id=None, build_id=None, parent_chat_id=None, diff_status=None)
    omitted = wire_chat()
    assert parse_chat(seed) == parse_chat(omitted)
    chat = parse_chat(seed)
    assert chat.id == "c1"
    assert chat.title == "Fix tests"
    assert chat.labels == {"source": "slack"}
    assert chat.diff_status is None
    assert chat.created_at == datetime(2025, 7, 17, 0, 0, 0, 123456, tzinfo=UTC)


def test_partial_watch_chat_with_null_labels() -> None:
    """A watch event's partial chat (labels null, keys missing) still parses."""
    chat = parse_chat({"id": "c1", "title": "t", "status": "running", "labels": None, "last_error": None})
    assert chat.labels == {}
    assert chat.status.phase is ChatPhase.WORKING


@pytest.mark.parametrize(
    ("last_error", "expected"),
    [
        (None, None),
        ("chat processing panicked: boom", ChatFailure(message="chat processing panicked: boom")),
        (
            {"message": "Anthropic is overloaded", "retryable": True, "kind": "overloaded"},
            ChatFailure(message="Anthropic is overloaded", retryable=True, kind=ErrorKind.OVERLOADED),
        ),
        ({"message": "Who knows", "kind": "solar_flare"}, ChatFailure(message="Who knows")),
        ("", None),
    ],
)
def test_last_error_as_string_object_or_null(last_error: Any, expected: ChatFailure | None) -> None:
    """last_error is a string in G1 and an object in G2; both read as a ChatFailure (an unknown kind
    as generic), null as None."""
    assert parse_chat(wire_chat(status="error", last_error=last_error)).last_error == expected


def test_last_error_omitted() -> None:
    """G2 omits last_error when there is none."""
    raw = wire_chat()
    del raw["last_error"]
    assert parse_chat(raw).last_error is None


def test_diff_status_with_zero_values() -> None:
    """The list endpoint's empty diff status parses; optional keys default."""
    diff = {
        "chat_id": "c1",
        "pull_request_title": "",
        "pull_request_draft": False,
        "changes_requested": False,
        "additions": 3,
        "deletions": 1,
        "changed_files": 2,
        "url": None,
    }
    status = parse_chat(wire_chat(diff_status=diff)).diff_status
    assert status is not None
    assert (status.additions, status.deletions, status.changed_files, status.url) == (3, 1, 2, "")


# Watch events and diffs --------------------------------------------------------------------------

WATCH_CHAT = {
    **wire_chat(status="running", last_model_config_id="00000000-0000-0000-0000-000000000000"),
    "mcp_server_ids": None,
    "labels": None,
}

DIFF_TEXT = """diff --git a/src/auth.py b/src/auth.py
index 1111111..2222222 100644
--- a/src/auth.py
+++ b/src/auth.py
@@ -1,2 +1,3 @@
 keep
-old
+new
+added
diff --git a/docs/old.md b/docs/new.md
similarity index 100%
rename from docs/old.md
rename to docs/new.md
diff --git a/logo.png b/logo.png
new file mode 100644
index 0000000..3333333
Binary files /dev/null and b/logo.png differ
"""


def test_watch_event_carries_its_partial_chat() -> None:
    """A status_change watch event becomes a typed event whose partial chat (nulls included) parses."""
    event = parse_watch_event({"kind": "status_change", "chat": WATCH_CHAT})
    assert event is not None
    assert event.kind is WatchKind.STATUS_CHANGE
    assert event.chat.status.phase is ChatPhase.WORKING
    assert event.chat.labels == {}


def test_watch_event_of_a_diff_change_has_its_diff_status() -> None:
    """diff_status_change carries the new ChatDiffStatus in its chat."""
    status = {"chat_id": "c1", "url": "https://github.com/o/r/pull/7", "pull_request_state": "open"}
    event = parse_watch_event({"kind": "diff_status_change", "chat": {**WATCH_CHAT, "diff_status": status}})
    assert event is not None
    assert event.chat.diff_status is not None
    assert event.chat.diff_status.pull_request_state == "open"


@pytest.mark.parametrize("raw", [{"kind": "context_dirty", "chat": WATCH_CHAT}, {"kind": "created"}, {}])
def test_unknown_or_unreadable_watch_events_are_skipped(raw: dict[str, Any]) -> None:
    """Kinds we don't act on (newer Coder) and events without a chat are skipped, not fatal."""
    assert parse_watch_event(raw) is None


def test_v2_watch_event_reads_g2_statuses() -> None:
    """The G2 watch parser reads G2 status names, including a running chat still queued for capacity."""
    raw = {"kind": "status_change", "chat": {**WATCH_CHAT, "queued_for_capacity": True}}
    event = v2_wire.parse_watch_event(raw)
    assert event is not None
    assert event.chat.status.phase is ChatPhase.STARTING


def test_v2_action_required_watch_event_says_the_chat_waits() -> None:
    """G2 announces a chat that starts to wait for its person as kind action_required (no status_change)."""
    raw = {"kind": "action_required", "chat": {**WATCH_CHAT, "status": "requires_action"}}
    event = v2_wire.parse_watch_event(raw)
    assert event is not None
    assert (event.kind, event.chat.status.phase) == (WatchKind.ACTION_REQUIRED, ChatPhase.NEEDS_USER)


def test_diff_lists_changed_files_with_line_counts() -> None:
    """GET /diff's git diff becomes the files it touches, renames and binary files included."""
    diff = parse_diff(
        {"chat_id": "c1", "branch": "fix", "pull_request_url": "https://x/pull/1", "diff": DIFF_TEXT}
    )
    assert [(f.path, f.additions, f.deletions) for f in diff.files] == [
        ("src/auth.py", 2, 1),
        ("docs/new.md", 0, 0),
        ("logo.png", 0, 0),
    ]
    assert (diff.branch, diff.pull_request_url) == ("fix", "https://x/pull/1")


@pytest.mark.parametrize("text", [None, "", "not a diff at all\n", "@@ -1 +1 @@\n-x\n"])
def test_missing_or_unreadable_diff_lists_no_files(text: str | None) -> None:
    """A diff that is omitted, empty or not a diff gives no files instead of an error."""
    assert parse_diff({"chat_id": "c1", "diff": text}).files == ()


@pytest.mark.parametrize(
    ("name", "phase"),
    [
        ("waiting", ChatPhase.IDLE),
        ("pending", ChatPhase.STARTING),
        ("running", ChatPhase.WORKING),
        ("paused", ChatPhase.NEEDS_USER),
        ("completed", ChatPhase.DONE),
        ("error", ChatPhase.ERROR),
        ("requires_action", ChatPhase.NEEDS_USER),
        ("interrupting", ChatPhase.WORKING),
        ("hibernating", ChatPhase.UNKNOWN),
    ],
)
def test_status_names_map_to_phases(name: str, phase: ChatPhase) -> None:
    """Every known status name has a phase; an unknown one is UNKNOWN and keeps its name."""
    status = parse_status(name)
    assert (status.phase, status.name) == (phase, name)


def test_missing_status_is_unknown() -> None:
    """A chat without a status (never sent by Coder, but possible in partials) is UNKNOWN."""
    raw = wire_chat()
    del raw["status"]
    assert parse_chat(raw).status.phase is ChatPhase.UNKNOWN


# Messages and parts ------------------------------------------------------------------------------


def test_zero_value_keys_of_other_part_types_are_ignored() -> None:
    """G1 emits every shared key on every part; a text part keeps only its text."""
    message = parse_message(wire_message(42, "assistant", wire_part(type="text", text="Hello")))
    assert message.content == (Part(type="text", text="Hello"),)
    assert message.text == "Hello"


def test_tool_call_and_result_parts() -> None:
    """Tool calls and results keep ids, names and raw JSON args/results."""
    call = wire_part(type="tool-call", tool_call_id="toolu_01", tool_name="execute", args={"command": "ls"})
    result = wire_part(
        type="tool-result",
        tool_call_id="toolu_01",
        tool_name="execute",
        result={"output": "a\nb\n", "exit_code": 0},
        is_error=False,
    )
    parts = parse_message(wire_message(5, "tool", call, result)).content
    assert parts[0].args == {"command": "ls"}
    assert parts[1].result == {"output": "a\nb\n", "exit_code": 0}
    assert (parts[1].tool_call_id, parts[1].tool_name) == ("toolu_01", "execute")


def test_unknown_part_types_are_kept_by_type() -> None:
    """A part type from a newer Coder is kept, with whatever known fields it has."""
    part = parse_message(
        wire_message(7, "assistant", {"type": "skill", "skill_name": "x", "text": "hi"})
    ).content[0]
    assert (part.type, part.text) == ("skill", "hi")


def test_older_builds_omit_zero_keys_and_content() -> None:
    """Envelope-era builds omit zero-valued part keys, and a message may omit empty content."""
    assert parse_message(wire_message(1, "user", {"type": "text", "text": "hi"})).text == "hi"
    assert parse_message({"id": 2, "role": "assistant", "created_at": "2025-07-17T00:00:05Z"}).content == ()


def test_file_part_keeps_file_id_and_media_type() -> None:
    """A stored file input becomes a file part with its id and sniffed media type."""
    part = parse_message(
        wire_message(3, "user", wire_part(type="file", media_type="image/png", file_id="f1"))
    ).content[0]
    assert (part.type, part.file_id, part.media_type) == ("file", "f1", "image/png")


def test_send_result_delivered() -> None:
    """A send answered queued:false carries the persisted user message."""
    result = parse_send_result({"queued": False, "message": wire_message(42, "user")})
    assert not result.queued
    assert result.message is not None
    assert result.message.id == 42


def test_send_result_queued() -> None:
    """A send answered queued:true carries the queued message (own id sequence)."""
    queued = {
        "id": 7,
        "chat_id": "c1",
        "content": [wire_part(type="text", text="later")],
        "created_at": "2025-07-17T00:00:05Z",
    }
    result = parse_send_result({"queued": True, "queued_message": queued})
    assert result.queued
    assert result.message is None
    assert result.queued_message is not None
    assert result.queued_message.text == "later"


def test_user_organizations() -> None:
    """/users/me gives the user and their organizations, extra keys ignored."""
    user = parse_user({"id": "u1", "username": "alice", "email": "a@x", "organization_ids": ["o1", "o2"]})
    assert (user.username, user.organization_ids) == ("alice", ("o1", "o2"))


def test_decode_reports_wrong_shapes_as_coder_error() -> None:
    """A 2xx body of the wrong shape is a CoderError, not a pydantic error."""
    with pytest.raises(CoderUnreadable, match="chat this bridge could not read"):
        decode({"title": "no id"}, parse_chat, "chat")
    with pytest.raises(CoderError):
        decode([1, 2], parse_chat, "chat")


# Stream events -----------------------------------------------------------------------------------


def test_status_event_nested_object() -> None:
    """A status event's payload is an object holding the status name."""
    event = parse_stream_event({"type": "status", "chat_id": "c1", "status": {"status": "running"}})
    assert isinstance(event, StatusEvent)
    assert event.status.phase is ChatPhase.WORKING


def test_status_event_plain_string_tolerated() -> None:
    """A status payload given as a bare string is read too."""
    event = parse_stream_event({"type": "status", "chat_id": "c1", "status": "pending"})
    assert isinstance(event, StatusEvent)
    assert event.status.phase is ChatPhase.STARTING


def test_message_part_event() -> None:
    """message_part nests role and part; the part's zero keys are ignored."""
    raw = {
        "type": "message_part",
        "chat_id": "c1",
        "message_part": {"role": "assistant", "part": wire_part(type="text", text="Hel")},
    }
    assert parse_stream_event(raw) == PartEvent(role="assistant", part=Part(type="text", text="Hel"))


def test_message_part_without_role_is_assistant() -> None:
    """role is omitempty; a part without one belongs to the reply being generated."""
    raw = {
        "type": "message_part",
        "chat_id": "c1",
        "message_part": {"part": {"type": "reasoning", "text": "hm"}},
    }
    event = parse_stream_event(raw)
    assert isinstance(event, PartEvent)
    assert event.role == "assistant"


def test_tool_call_delta_part() -> None:
    """A streaming tool-call part carries args_delta."""
    raw = {
        "type": "message_part",
        "chat_id": "c1",
        "message_part": {
            "role": "assistant",
            "part": wire_part(type="tool-call", tool_call_id="t1", tool_name="execute", args_delta='{"com'),
        },
    }
    event = parse_stream_event(raw)
    assert isinstance(event, PartEvent)
    assert event.part.args_delta == '{"com'


def test_message_event() -> None:
    """A message event carries the full persisted message with usage ignored."""
    raw_message = {**wire_message(43), "usage": {"input_tokens": 10, "output_tokens": 2}}
    event = parse_stream_event({"type": "message", "chat_id": "c1", "message": raw_message})
    assert isinstance(event, MessageEvent)
    assert (event.message.id, event.message.text) == (43, "message 43")


def test_queue_update_with_and_without_key() -> None:
    """queue_update lists the whole queue; a missing key means the queue is now empty."""
    queued = {"id": 1, "chat_id": "c1", "content": [wire_part(type="text", text="q")], "created_at": None}
    full = parse_stream_event({"type": "queue_update", "chat_id": "c1", "queued_messages": [queued]})
    empty = parse_stream_event({"type": "queue_update", "chat_id": "c1"})
    assert isinstance(full, QueueEvent)
    assert [q.text for q in full.queue] == ["q"]
    assert empty == QueueEvent(queue=())


def test_error_event_with_only_message() -> None:
    """Early G1 error payloads carry only a message: a generic failure."""
    event = parse_stream_event({"type": "error", "chat_id": "c1", "error": {"message": "boom"}})
    assert isinstance(event, ErrorEvent)
    assert event.failure == ChatFailure(message="boom")


def test_error_event_full() -> None:
    """Later error payloads add kind and retryable."""
    raw = {
        "type": "error",
        "chat_id": "c1",
        "error": {"message": "overloaded", "kind": "overloaded", "provider": "anthropic", "retryable": True},
    }
    assert parse_stream_event(raw) == ErrorEvent(
        message="overloaded", retryable=True, error_kind="overloaded", provider="anthropic"
    )


def test_retry_event() -> None:
    """A retry event keeps attempt, delay and error; extra keys are ignored."""
    raw = {
        "type": "retry",
        "chat_id": "c1",
        "retry": {
            "attempt": 2,
            "delay_ms": 2000,
            "error": "Anthropic is overloaded",
            "retrying_at": "2025-07-17T00:00:05Z",
            "status_code": 529,
        },
    }
    assert parse_stream_event(raw) == RetryEvent(
        attempt=2, delay_ms=2000, error="Anthropic is overloaded", status_code=529
    )


def test_unknown_event_types_are_skipped() -> None:
    """An event type from a newer Coder is skipped, not fatal."""
    assert parse_stream_event({"type": "usage_update", "chat_id": "c1", "usage": {}}) is None
    assert parse_stream_event({"chat_id": "c1"}) is None


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "message", "chat_id": "c1"},
        {"type": "message", "chat_id": "c1", "message": {"id": "not-a-number", "role": "user"}},
        {"type": "message_part", "chat_id": "c1", "message_part": "text"},
        {"type": "status", "chat_id": "c1"},
        {"type": "retry", "chat_id": "c1", "retry": {"attempt": "x"}},
    ],
)
def test_malformed_events_are_skipped(raw: dict[str, Any]) -> None:
    """A known event type with a broken payload is skipped with a warning, never raised."""
    assert parse_stream_event(raw) is None


# Error answers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, CoderRejected),
        (401, CoderAuthError),
        (403, CoderRejected),
        (404, CoderNotFound),
        (408, CoderUnavailable),
        (409, CoderRejected),
        (413, CoderRejected),
        (429, CoderUnavailable),
        (500, CoderUnavailable),
        (503, CoderUnavailable),
    ],
)
def test_rest_status_maps_to_error_class(status: int, error_class: type[CoderError]) -> None:
    """Each HTTP status lands on the branch of the error tree that says what to do."""
    error = error_from_response(status, b'{"message":"x"}')
    assert type(error) is error_class
    assert error.status == status


def test_error_body_fields_are_kept() -> None:
    """Coder's message, detail and validations travel with the error."""
    body = (
        b'{"message":"Invalid labels.","detail":"d",'
        b'"validations":[{"field":"labels","detail":"label value for key \\"x\\" must not be empty"}]}'
    )
    error = error_from_response(400, body)
    assert (error.message, error.detail) == ("Invalid labels.", "d")
    assert error.validations == (Validation("labels", 'label value for key "x" must not be empty'),)
    assert "labels: label value" in str(error)


def test_non_json_error_body_names_the_status() -> None:
    """A proxy's HTML error page becomes a message with the status, the body shortened as detail."""
    error = error_from_response(502, b"<html>" + b"x" * 1000 + b"</html>", "Bad Gateway")
    assert isinstance(error, CoderUnavailable)
    assert error.message == "Coder answered HTTP 502 Bad Gateway"
    assert len(error.detail) <= 201


def invalid_status(status: int, body: bytes = b"") -> InvalidStatus:
    return InvalidStatus(Response(status, "", Headers(), body))


@pytest.mark.parametrize(
    ("exc", "error_class"),
    [
        (invalid_status(401, b'{"message":"You must be logged in."}'), CoderAuthError),
        (invalid_status(403), CoderAuthError),
        (invalid_status(404), CoderNotFound),
        (invalid_status(400, b'{"message":"Invalid after_id parameter."}'), CoderRejected),
        (invalid_status(500, b'{"message":"Chat streaming is not available."}'), CoderUnavailable),
        (invalid_status(502), CoderUnavailable),
        (ConnectionRefusedError(), CoderUnavailable),
        (TimeoutError(), CoderUnavailable),
        (ConnectionClosedError(Close(1011, "keepalive ping timeout"), None), CoderUnavailable),
        (InvalidURI("nope://", "bad scheme"), CoderError),
    ],
)
def test_stream_failures_decide_retry_or_give_up(exc: Exception, error_class: type[CoderError]) -> None:
    """Upgrade auth failures, unknown chats and bad requests give up; network trouble retries."""
    error = classify_failure(exc)
    assert type(error) is error_class


def test_stream_failure_keeps_coder_message() -> None:
    """The upgrade's JSON error body becomes the error's message."""
    error = classify_failure(invalid_status(400, b'{"message":"Invalid after_id parameter."}'))
    assert error is not None
    assert error.message == "Invalid after_id parameter."


def test_bugs_are_not_classified_as_connection_failures() -> None:
    """An exception unrelated to the connection is left to propagate."""
    assert classify_failure(KeyError("x")) is None


def test_websocket_url() -> None:
    """http(s) deployment URLs become ws(s) stream URLs, with query parameters."""
    assert (
        websocket_url("https://coder.example.com/", "/s", {"after_id": 5})
        == "wss://coder.example.com/s?after_id=5"
    )
    assert websocket_url("http://127.0.0.1:8080", "/s", {}) == "ws://127.0.0.1:8080/s"


# Backoff (shared by REST retries, stream reconnects and the relay's Slack retries) --------------------------


def test_backoff_ceiling_grows_exponentially_up_to_cap() -> None:
    """With the jitter draw at its maximum, delays are initial * factor**n capped."""
    delays = Backoff(initial=1.0, factor=2.0, cap=5.0, rng=lambda: 1.0).delays()
    assert list(itertools.islice(delays, 6)) == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_backoff_full_jitter_stays_below_ceiling() -> None:
    """Real draws are between zero and the ceiling, and each sequence starts over."""
    backoff = Backoff(initial=0.1, factor=3.0, cap=1.0)
    for _ in range(20):
        drawn = list(itertools.islice(backoff.delays(), 5))
        assert all(0.0 <= d <= c for d, c in zip(drawn, [0.1, 0.3, 0.9, 1.0, 1.0], strict=True))


def test_backoff_delay_for_a_failure_count_draws_as_the_slack_retries_always_did() -> None:
    """``delay(n)`` draws as ``uniform(0, min(30, 0.5 * 2**n))`` did in the relay, draw for draw."""
    ours, theirs = random.Random(7), random.Random(7)
    backoff = Backoff(initial=0.5, cap=30.0, rng=ours.random)
    for failures in [1, 2, 3, 4, 6, 7, 9]:
        assert backoff.delay(failures) == theirs.uniform(0, min(30.0, 0.5 * 2**failures))


# G2 (promoted /api/v2/chats) ---------------------------------------------------------------------


def wire_g2_chat(**fields: Any) -> dict[str, Any]:
    """A chat as G2 sends it: G2's added keys, last_error omitted when there is none."""
    g2_keys: dict[str, Any] = {
        "organization_id": "o1",
        "status": "running",
        "last_turn_summary": None,
        "summary": None,
        "shared": False,
        "client_type": "api",
        "children": [],
    }
    chat = wire_chat(**{**g2_keys, **fields})
    if chat["last_error"] is None:
        del chat["last_error"]
    return chat


def test_g2_chat_parses_with_its_added_keys() -> None:
    """A full G2 chat parses; its extra keys are ignored, status read by the G2 table."""
    chat = v2_wire.parse_chat(wire_g2_chat(mode="explore", plan_mode="plan", files=[], warnings=["w"]))
    assert (chat.id, chat.status.name, chat.status.phase, chat.last_error) == (
        "c1",
        "running",
        ChatPhase.WORKING,
        None,
    )


def test_g2_last_error_object() -> None:
    """G2's last_error object (message, detail?, kind?, provider?, retryable, status_code?) is read whole."""
    error = {
        "message": "Overloaded",
        "detail": "529",
        "kind": "overloaded",
        "provider": "anthropic",
        "retryable": True,
        "status_code": 529,
    }
    assert v2_wire.parse_chat(wire_g2_chat(status="error", last_error=error)).last_error == ChatFailure(
        message="Overloaded",
        detail="529",
        kind=ErrorKind.OVERLOADED,
        provider="anthropic",
        retryable=True,
        status_code=529,
    )


@pytest.mark.parametrize(
    ("name", "phase"),
    [
        ("waiting", ChatPhase.IDLE),
        ("running", ChatPhase.WORKING),
        ("error", ChatPhase.ERROR),
        ("requires_action", ChatPhase.NEEDS_USER),
        ("interrupting", ChatPhase.WORKING),
        ("pending", ChatPhase.UNKNOWN),
        ("compacting", ChatPhase.UNKNOWN),
    ],
)
def test_g2_status_names_map_to_phases(name: str, phase: ChatPhase) -> None:
    """G2 has five statuses; G1-only names such as pending are unknown there, and keep their name."""
    status = v2_wire.parse_status(name)
    assert (status.phase, status.name) == (phase, name)


def test_g2_running_but_queued_for_capacity_is_starting() -> None:
    """A running chat still waiting for an agent slot has not started yet."""
    chat = v2_wire.parse_chat(wire_g2_chat(queued_for_capacity=True))
    assert (chat.status.phase, chat.status.name) == (ChatPhase.STARTING, "running")
    assert (
        v2_wire.parse_chat(wire_g2_chat(status="waiting", queued_for_capacity=True)).status.phase
        is ChatPhase.IDLE
    )


def test_g2_status_events_use_the_g2_table() -> None:
    """Stream status events are parsed with G2's names; unknown ones keep their name."""
    for name, phase in (("requires_action", ChatPhase.NEEDS_USER), ("pending", ChatPhase.UNKNOWN)):
        event = v2_wire.parse_stream_event({"type": "status", "chat_id": "c1", "status": {"status": name}})
        assert isinstance(event, StatusEvent)
        assert (event.status.phase, event.status.name) == (phase, name)


def test_g2_message_events_are_g1_shaped() -> None:
    """G2 message events (with G2-only part fields and types) parse like G1's."""
    parts = [
        wire_part(type="skill", skill_name="deploy", skill_description="Deploys"),
        wire_part(type="hook-notice", text="Hook ran"),
        wire_part(
            type="reasoning",
            text="hmm",
            created_at="2026-09-01T00:00:00Z",
            completed_at="2026-09-01T00:00:01Z",
        ),
    ]
    event = v2_wire.parse_stream_event(
        {"type": "message", "chat_id": "c1", "message": wire_message(5, "assistant", *parts)}
    )
    assert isinstance(event, MessageEvent)
    assert [(p.type, p.text) for p in event.message.content] == [
        ("skill", ""),
        ("hook-notice", "Hook ran"),
        ("reasoning", "hmm"),
    ]


def test_g2_send_result_with_messages_batch() -> None:
    """G2 lists every inserted message in ``messages``; without ``message`` the last user one is it."""
    raw = {
        "queued": False,
        "messages": [wire_message(8, "user"), wire_message(9, "assistant")],
        "warnings": ["w"],
    }
    result = parse_send_result(raw)
    assert result.message is not None
    assert result.message.id == 8
    both = parse_send_result({**raw, "message": wire_message(8, "user")})
    assert both == result
