"""Request validation of the G1 Chats API, failing with coderd's exact status codes and texts.

The checks run in the order coderd runs them (reference sections 1a, 2, 2a, 2b, 3.1, 3.4), because a
request that breaks two rules must get the same answer from the simulator as from a real server.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from bridge.sim.coder_state import G1_UPLOAD_TYPES, NIL_UUID, JsonDict, error_body, part

T = TypeVar("T")

MAX_UPLOAD_BYTES: Final = 10 << 20
_MAX_FILE_NAME_BYTES: Final = 255
_IMAGE_MAGIC: Final = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
)
# UNCERTAIN: coderd/chatfiles' byte-level classification of text attachments is not in the reference;
# sniffing text gives "text/plain", so a text upload keeps its declared (allow-listed) text type.
_TEXT_TYPES: Final = frozenset({"application/json", "text/csv", "text/markdown", "text/plain"})

# Section 3.1 (coderd/httpapi/chatlabels.go).
_MAX_LABELS: Final = 50
_MAX_LABEL_KEY_BYTES: Final = 64
_MAX_LABEL_VALUE_BYTES: Final = 256
_LABEL_KEY: Final = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._/-]*$")

# Section 2b.
_TITLE_WORDS: Final = 6
_TITLE_RUNES: Final = 80

_GO_INT: Final = re.compile(r"^[+-]?[0-9]+$")
_FILENAME: Final = re.compile(r'filename="?([^";]*)"?', re.IGNORECASE)


class ApiError(Exception):
    """A Coder error response: raised anywhere in the simulator, written once by the HTTP layer."""

    def __init__(
        self,
        status: int,
        message: str,
        detail: str | None = None,
        validations: Sequence[JsonDict] = (),
        *,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        """``fields`` join the body after Coder's own (a ``kind``, a usage limit's ``resets_at`` …)."""
        super().__init__(message)
        self.status = status
        self.body = {**error_body(message, detail, validations), **(fields or {})}


def not_found() -> ApiError:
    """httpapi.ResourceNotFound: also what a chat owned by someone else looks like (404, never 403)."""
    # UNCERTAIN (reference 7.10): the exact wording; this is the shared helper's text.
    return ApiError(404, "Resource not found or you do not have access to this resource")


def bad_json(detail: str) -> ApiError:
    return ApiError(400, "Request body must be valid JSON.", detail)


def parse_body(raw: bytes) -> JsonDict:
    """httpapi.Read: the body must decode into the request struct, i.e. be a JSON object."""
    if not raw.strip():
        raise bad_json("EOF")
    try:
        value = json.loads(raw)
    except ValueError as err:
        raise bad_json(str(err)) from None
    if not isinstance(value, dict):
        raise bad_json(f"json: cannot unmarshal {_json_kind(value)} into Go value of type struct")
    return value


def optional(body: Mapping[str, Any], key: str, kind: type[T]) -> T | None:
    """A field decoded like a Go pointer: null or absent is None, a wrong JSON type fails decoding."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise bad_json(f"json: cannot unmarshal {_json_kind(value)} into Go struct field .{key}")
    return value


def optional_uuid(body: Mapping[str, Any], key: str) -> str | None:
    """A uuid field: Go's decoder rejects an unparsable one as invalid JSON; returned canonical."""
    raw = optional(body, key, str)
    if raw is None:
        return None
    canonical = canonical_uuid(raw)
    if canonical is None:
        raise bad_json(f"invalid UUID length: {len(raw)}")
    return canonical


def canonical_uuid(raw: str) -> str | None:
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return None


def parse_uuid_param(raw: str) -> str:
    """httpmw.ParseUUIDParam for ``{chat}``: a malformed id is 400, not 404."""
    canonical = canonical_uuid(raw)
    if canonical is None:
        raise ApiError(400, f"Invalid UUID {_go_quote(raw)}.", f"invalid UUID length: {len(raw)}")
    return canonical


def parse_content(raw: Any, media_type_of: Callable[[str], str | None]) -> tuple[list[JsonDict], str]:
    """createChatInputFromParts: input parts -> stored message parts plus the title source text.

    ``media_type_of`` maps a file id the caller may use to its stored media type, else None.
    """
    items = _list_of_objects(raw, "content")
    if not items:
        raise ApiError(400, "Content is required.", "Content cannot be empty.")
    stored: list[JsonDict] = []
    title_texts: list[str] = []
    for index, item in enumerate(items):
        message_part, title_text = _input_part(f"content[{index}]", item, media_type_of)
        stored.append(message_part)
        if title_text is not None:
            title_texts.append(title_text)
    return stored, " ".join(title_texts).strip()


def _input_part(
    where: str, item: Mapping[str, Any], media_type_of: Callable[[str], str | None]
) -> tuple[JsonDict, str | None]:
    raw_type = optional(item, "type", str) or ""
    kind = raw_type.strip().lower()
    if kind == "text":
        text = (optional(item, "text", str) or "").strip()
        if not text:
            raise _invalid_part(f"{where}.text cannot be empty.")
        return part("text", text=text), text
    if kind == "file":
        file_id = optional_uuid(item, "file_id")
        if file_id is None or file_id == NIL_UUID:
            raise _invalid_part(f"{where}.file_id is required for file parts.")
        media_type = media_type_of(file_id)
        if media_type is None:
            raise _invalid_part(f"{where}.file_id references a file that does not exist.")
        return part("file", media_type=media_type, file_id=file_id), None
    if kind == "file-reference":
        return _file_reference(where, item)
    raise _invalid_part(f"{where}.type {_go_quote(raw_type)} is not supported.")


def _file_reference(where: str, item: Mapping[str, Any]) -> tuple[JsonDict, str]:
    name = optional(item, "file_name", str) or ""
    if not name:
        raise _invalid_part(f"{where}.file_name cannot be empty for file-reference.")
    start = optional(item, "start_line", int) or 0
    end = optional(item, "end_line", int) or 0
    code = optional(item, "content", str) or ""
    stored = part("file-reference", file_name=name, start_line=start, end_line=end, content=code)
    lines = f"{start}" if start == end else f"{start}-{end}"
    title_text = f"[file-reference] {name}:{lines}"
    if code.strip():
        title_text += f"\n```{name}\n{code.strip()}\n```"
    return stored, title_text


def _invalid_part(detail: str) -> ApiError:
    return ApiError(400, "Invalid input part.", detail)


def derive_title(source: str) -> str:
    """chatTitleFromMessage: six words, "…" when cut, at most 80 runes; "New Chat" without text."""
    words = source.split()
    if not words:
        return "New Chat"
    title = " ".join(words[:_TITLE_WORDS]) + ("…" if len(words) > _TITLE_WORDS else "")
    return title[:_TITLE_RUNES]


def parse_labels(raw: Any) -> dict[str, str] | None:
    """A labels map from a body (None when absent), rejected with every violated rule at once."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise bad_json("json: cannot unmarshal into Go struct field .labels of type map[string]string")
    violations = list(_label_violations(raw))
    if violations:
        raise ApiError(400, "Invalid labels.", validations=violations)
    return dict(raw)


def _label_violations(labels: Mapping[str, str]) -> Iterable[JsonDict]:
    if len(labels) > _MAX_LABELS:
        yield _label_error(f"too many labels ({len(labels)}); maximum is {_MAX_LABELS}")
    for key, value in labels.items():
        if not key:
            yield _label_error("label key must not be empty")
            continue
        quoted = _go_quote(key)
        if len(key.encode()) > _MAX_LABEL_KEY_BYTES:
            yield _label_error(f"label key {quoted} exceeds maximum length of {_MAX_LABEL_KEY_BYTES} bytes")
        if not _LABEL_KEY.match(key):
            yield _label_error(
                f"label key {quoted} contains invalid characters; must match {_LABEL_KEY.pattern}"
            )
        if not value:
            yield _label_error(f"label value for key {quoted} must not be empty")
        if len(value.encode()) > _MAX_LABEL_VALUE_BYTES:
            yield _label_error(
                f"label value for key {quoted} exceeds maximum length of {_MAX_LABEL_VALUE_BYTES} bytes"
            )


def _label_error(detail: str) -> JsonDict:
    return {"field": "labels", "detail": detail}


def parse_mcp_server_ids(raw: Any) -> list[str]:
    """``mcp_server_ids``: a list of uuids (Go's decoder rejects a malformed one), canonical."""
    ids = [canonical_uuid(value) for value in _list_of_strings(raw, "mcp_server_ids")]
    if None in ids:
        raise bad_json("json: cannot unmarshal into Go struct field .mcp_server_ids: invalid UUID")
    return [i for i in ids if i is not None]


@dataclass(frozen=True)
class ToolResult:
    """One entry of ``POST /chats/{id}/tool-results`` (codersdk.ToolResult) as Go decodes it: absent
    fields are zero values, and an absent ``output`` is an empty json.RawMessage, which is not JSON."""

    tool_call_id: str
    output: Any
    has_output: bool
    is_error: bool


def parse_tool_results(body: Mapping[str, Any]) -> list[ToolResult]:
    """``SubmitToolResultsRequest.results``."""
    return [
        ToolResult(
            tool_call_id=optional(item, "tool_call_id", str) or "",
            output=item.get("output"),
            has_output="output" in item,
            is_error=bool(optional(item, "is_error", bool)),
        )
        for item in _list_of_objects(body.get("results"), "results")
    ]


def check_tool_results(results: Sequence[ToolResult], pending: Iterable[str]) -> None:
    """chatstate.ValidateToolResults against the pending call ids, in its order (per result: duplicate,
    invalid JSON; then a missing result; then an unexpected one), worded as chatd's
    translateToolResultValidationError. UNCERTAIN: the status code, 400 like other bad input."""
    submitted: set[str] = set()
    for result in results:
        quoted = _go_quote(result.tool_call_id)
        if result.tool_call_id in submitted:
            raise ApiError(400, "Duplicate tool_call_id in results.", f"Duplicate tool call ID {quoted}.")
        if not result.has_output:
            detail = f"Output for tool call {quoted} is not valid JSON."
            raise ApiError(400, "Tool result output must be valid JSON.", detail)
        submitted.add(result.tool_call_id)
    waiting = list(pending)
    for call_id in waiting:
        if call_id not in submitted:
            raise ApiError(400, "Missing tool result.", f"Missing result for tool call {_go_quote(call_id)}.")
    for call_id in submitted - set(waiting):
        raise ApiError(400, "Unexpected tool result.", f"No pending tool call with ID {_go_quote(call_id)}.")


PLAN_MODES: Final = ("plan", "")
"""``codersdk.ChatPlanMode`` values: ``plan``, and the empty string that clears it (on a send or PATCH)."""


def parse_plan_mode(body: Mapping[str, Any]) -> str | None:
    """A request's ``plan_mode``: None when absent (no change). UNCERTAIN: chatd's words for a value
    it does not know; 400 like the other enum checks."""
    mode = optional(body, "plan_mode", str)
    if mode is not None and mode not in PLAN_MODES:
        raise ApiError(400, "Invalid plan mode.", f'Must be "plan" or "", got "{mode}".')
    return mode


def parse_label_filter(values: Iterable[str]) -> dict[str, str]:
    """``label=key:value`` list filters; every pair must match (AND)."""
    wanted: dict[str, str] = {}
    for value in values:
        key, sep, label = value.partition(":")
        if not sep or not key or not label:
            expected = "(expected format key:value, both must be non-empty)"
            raise ApiError(400, f"Invalid label filter: {_go_quote(value)} {expected}")
        wanted[key] = label
    return wanted


def parse_archived_query(query: str) -> bool:
    """The ``q`` search of GET /chats; only ``archived:`` is supported, and it defaults to false.

    UNCERTAIN for G1 (the reference is silent): stored coderd/searchquery.Chats hides archived
    chats unless ``archived:true`` is asked for, so the simulator does the same.
    """
    archived = False
    for term in query.split():
        key, sep, value = term.partition(":")
        if not sep or not key or not value:
            raise _bad_search(f"unsupported search term: {_go_quote(term)}")
        if key.lower() != "archived":
            raise _bad_search(f"Query param {_go_quote(key.lower())} is not a valid query param")
        if value.lower() not in ("true", "false"):
            raise _bad_search(
                f'Query param "archived" must be a valid boolean: {_strconv("ParseBool", value)}'
            )
        archived = value.lower() == "true"
    return archived


def _bad_search(detail: str) -> ApiError:
    return ApiError(400, "Invalid chat search query.", validations=[{"field": "q", "detail": detail}])


def parse_list_page(query: Mapping[str, str]) -> tuple[int, int]:
    """ParsePagination's ``limit`` (0 = all) and ``offset`` for GET /chats."""
    limit, offset = _query_ints(query, {"limit": (0, 32), "offset": (0, 32)})
    return limit, offset


def parse_message_page(query: Mapping[str, str]) -> tuple[int, int]:
    """``before_id`` (0 = first page) and ``limit`` (1..200, default 50) of GET /messages."""
    before_id, limit, _ = parse_message_window(query, with_after_id=False)
    return before_id, limit


def parse_message_window(query: Mapping[str, str], *, with_after_id: bool) -> tuple[int, int, int]:
    """``before_id``, ``limit`` and (G2 only; 0 otherwise) ``after_id`` of GET /messages."""
    specs = {"before_id": (0, 64), "limit": (50, 32)}
    if with_after_id:
        specs["after_id"] = (0, 64)
    before_id, limit, *rest = _query_ints(query, specs)
    if not 1 <= limit <= 200:
        raise ApiError(400, "Invalid limit parameter (1-200).")
    return before_id, limit, rest[0] if rest else 0


def _query_ints(query: Mapping[str, str], specs: Mapping[str, tuple[int, int]]) -> list[int]:
    """Integer params by name -> (default, bits); like QueryParamParser, all problems in one 400."""
    errors: list[JsonDict] = []
    values = [_non_negative(query, key, default, bits, errors) for key, (default, bits) in specs.items()]
    if errors:
        raise ApiError(400, "Query parameters have invalid values.", validations=errors)
    return values


def _non_negative(query: Mapping[str, str], key: str, default: int, bits: int, errors: list[JsonDict]) -> int:
    """QueryParamParser.PositiveInt32/64, which (despite the name) accepts zero."""
    raw = query.get(key, "")
    if not raw:
        return default
    problem = _go_int_problem(raw, bits)
    if problem is None and int(raw) < 0:
        problem = "value is negative"
    if problem is not None:
        detail = f"Query param {_go_quote(key)} must be a valid {bits}-bit positive integer: {problem}"
        errors.append({"field": key, "detail": detail})
        return default
    return int(raw)


def parse_after_id(raw: str) -> int:
    """The stream's ``after_id``: any int64, empty meaning 0."""
    if not raw:
        return 0
    problem = _go_int_problem(raw, 64)
    if problem is not None:
        raise ApiError(400, "Invalid after_id parameter.", problem)
    return int(raw)


def parse_message_id(raw: str) -> int:
    """The edited message's id in the path: a positive int64."""
    if _go_int_problem(raw, 64) is not None or int(raw) <= 0:
        raise ApiError(400, "Invalid chat message ID.", "Message ID must be a positive integer.")
    return int(raw)


def parse_queued_id(raw: str) -> int:
    """A queued message's id in the path: any int64."""
    problem = _go_int_problem(raw, 64)
    if problem is not None:
        raise ApiError(400, "Invalid queued message ID.", problem)
    return int(raw)


def _go_int_problem(raw: str, bits: int) -> str | None:
    """What strconv.ParseInt would complain about, or None when ``raw`` is a valid integer."""
    if not _GO_INT.match(raw):
        return _strconv("ParseInt", raw, "invalid syntax")
    if not -(1 << (bits - 1)) <= int(raw) < 1 << (bits - 1):
        return _strconv("ParseInt", raw, "value out of range")
    return None


def check_upload(declared: str, data: bytes, allowed: Sequence[str] = G1_UPLOAD_TYPES) -> str:
    """postChatFile: declared type allow-listed, sniffed type allow-listed, then the size cap.

    Returns the sniffed media type, which is what coderd stores and serves back; ``allowed`` is the
    generation's list (G1: images; G2 adds PDF and text types).
    """
    declared_type = declared.split(";", 1)[0].strip().lower() or "application/octet-stream"
    sniffed = sniff(data[:512], declared_type)
    if declared_type not in allowed or sniffed is None or sniffed not in allowed:
        raise ApiError(400, "Unsupported file type.", f"Allowed types: {', '.join(allowed)}.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ApiError(413, "File too large.", f"Maximum file size is {MAX_UPLOAD_BYTES} bytes.")
    return sniffed


def sniff(head: bytes, declared_type: str) -> str | None:
    """The type the bytes show: a known magic number, else the declared text type if they read as text."""
    magic = sniff_image(head)
    if magic is not None or declared_type not in _TEXT_TYPES:
        return magic
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 3:
            return None
        text = head[: err.start].decode("utf-8")  # the 512-byte head cut a multi-byte character
    return declared_type if text and "\x00" not in text else None


def sniff_image(head: bytes) -> str | None:
    """http.DetectContentType for the allowed binary types, plus coderd's own WebP check."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return next((media for magic, media in _IMAGE_MAGIC if head.startswith(magic)), None)


def upload_name(disposition: str) -> str:
    """The optional ``Content-Disposition`` filename, cut to 255 bytes on a character boundary."""
    match = _FILENAME.search(disposition)
    name = match.group(1) if match else ""
    return name.encode()[:_MAX_FILE_NAME_BYTES].decode(errors="ignore")


def _list_of_objects(raw: Any, key: str) -> list[Mapping[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise bad_json(f"json: cannot unmarshal into Go struct field .{key}")
    return raw


def _list_of_strings(raw: Any, key: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise bad_json(f"json: cannot unmarshal into Go struct field .{key}")
    return raw


def _json_kind(value: Any) -> str:
    kinds = ((bool, "bool"), (int | float, "number"), (str, "string"), (list, "array"), (dict, "object"))
    return next((name for kind, name in kinds if isinstance(value, kind)), "null")


def _strconv(function: str, raw: str, reason: str = "invalid syntax") -> str:
    return f"strconv.{function}: parsing {_go_quote(raw)}: {reason}"


def _go_quote(value: str) -> str:
    """Go's %q for the plain strings these messages quote."""
    return json.dumps(value, ensure_ascii=False)
