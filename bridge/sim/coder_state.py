"""The simulated Coder deployment's stored state and the JSON shapes it takes on the wire (G1 and G2).

Every key the simulator emits is decided here, next to the reference section that fixes it, so an
``omitempty`` rule or the part-serialization quirk is written once and shared by REST, stream and
watch. What differs between API generations is data in ``Dialect``, read by the one engine and
router. Section numbers refer to ``shared/reference/coder-chats-api.md``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

JsonDict = dict[str, Any]
Framing = Literal["envelope", "envelope-single", "bare"]
Generation = Literal["experimental", "v2", "v2.37", "v2-late", "ai-sdk"]

NIL_UUID: Final = "00000000-0000-0000-0000-000000000000"
G1_BASE: Final = "/api/experimental/chats"
G2_BASE: Final = "/api/v2/chats"
G2_MODELS: Final = "/api/v2/organizations/{organization}/chats/models"
G1_MCP_SERVERS: Final = "/api/experimental/mcp/servers"
G2_MCP_SERVERS: Final = "/api/v2/organizations/{organization}/mcp-servers"
PROMOTE_ACCEPTED: Final = "Queued message promotion accepted."


@dataclass(frozen=True)
class Dialect:
    """What one API generation changes, as data: paths, status names, upload types and Chat shape.

    ``promoted`` is G2 (section 0): the API graduated to ``/api/v2/chats``; ``v2.37`` also mounts
    it under the experimental prefix, the one-release compatibility window (PR #28496).
    ``ai_sdk`` is G0a (section 6): a different API altogether, served by ``coder_aisdk``.
    """

    generation: Generation
    bases: tuple[str, ...]
    promoted: bool
    version: str
    upload_types: tuple[str, ...]
    ai_sdk: bool = False
    experiments: tuple[str, ...] = ("agents",)
    late: bool = False
    """The newest source (reference section 0a, "G2-late"): promote answers 202, MCP servers are
    organization-scoped, the stream is snapshot-versioned (``preview_reset``, ``history_reset``,
    revisions, part ``seq``), errors carry a ``kind``. Earlier G2 builds keep the older forms."""

    @property
    def queued_status(self) -> str:
        """What a chat with work to do shows before and while a worker runs it.

        G2 has no ``pending``: coder/coder TestPostChatsStartsRunning asserts new chats start
        ``running`` (chatstate: execution state and worker ownership are orthogonal).
        """
        return "running" if self.promoted else "pending"

    @property
    def busy(self) -> frozenset[str]:
        """Statuses in which a sent message is queued (G2: chatstate R*, I*, A* hold a queue)."""
        if self.promoted:
            return frozenset({"running", "interrupting", "requires_action"})
        # UNCERTAIN (reference 7.8): shouldQueueUserMessage's exact set; pending and running are assumed.
        return frozenset({"pending", "running"})


# Section 2a: images only in the envelope-era builds; listed sorted, as coderd prints them.
G1_UPLOAD_TYPES: Final = ("image/gif", "image/jpeg", "image/png", "image/webp")
# codersdk.AllChatAttachmentMediaTypes in the newest source, in its (sorted) order.
G2_UPLOAD_TYPES: Final = (
    "application/json",
    "application/pdf",
    "image/gif",
    "image/jpeg",
    "image/png",
    "image/webp",
    "text/csv",
    "text/markdown",
    "text/plain",
)

DIALECTS: Final[Mapping[Generation, Dialect]] = {
    "experimental": Dialect("experimental", (G1_BASE,), False, "v2.36.0-sim", G1_UPLOAD_TYPES),
    "v2.37": Dialect("v2.37", (G2_BASE, G1_BASE), True, "v2.37.0-sim", G2_UPLOAD_TYPES),
    "v2": Dialect("v2", (G2_BASE,), True, "v2.38.0-sim", G2_UPLOAD_TYPES),
    # UNCERTAIN (reference 0a): which release first shipped each late delta; the sim names one.
    "v2-late": Dialect("v2-late", (G2_BASE,), True, "v2.41.0-sim", G2_UPLOAD_TYPES, late=True),
    # G0a: the routes answer only with the "agentic-chat" experiment on (coder/coder coderd/chat_test.go
    # expects 403 without it). UNCERTAIN: the release range; 2025 builds, so a 2.2x version.
    "ai-sdk": Dialect(
        "ai-sdk", (G2_BASE,), False, "v2.22.0-sim", (), ai_sdk=True, experiments=("agentic-chat",)
    ),
}

# Section 3.3: the Go part struct is shared by every variant, so these keys are emitted, zero-valued,
# on every part. ``text`` is placed right after ``type`` by ``part`` to match the struct order.
# UNCERTAIN (reference 7.13): the oldest envelope builds omitted them; every framing emits them here.
_ZERO_PART_FIELDS: Final[Mapping[str, Any]] = {
    "url": "",
    "media_type": "",
    "file_name": "",
    "start_line": 0,
    "end_line": 0,
    "content": "",
    "context_file_path": "",
}

# Section 3.7: the ChatDiffStatus keys that are present even when nothing is known.
_DIFF_STATUS_DEFAULTS: Final[Mapping[str, Any]] = {
    "pull_request_title": "",
    "pull_request_draft": False,
    "changes_requested": False,
    "additions": 0,
    "deletions": 0,
    "changed_files": 0,
}

# Section 2, GET /models; ids are illustrative catalog strings, not model-config uuids.
MODELS_RESPONSE: Final[JsonDict] = {
    "providers": [
        {
            "provider": "anthropic",
            "available": True,
            "models": [
                {
                    "id": "anthropic:claude-sonnet-4",
                    "provider": "anthropic",
                    "model": "claude-sonnet-4",
                    "display_name": "Claude Sonnet 4",
                }
            ],
        },
        {"provider": "openai", "available": False, "unavailable_reason": "missing_api_key", "models": []},
    ]
}

# Section 4.2: the watch socket's "connection ready" envelope.
PING_FRAME: Final = '{"type":"ping","data":null}'


def timestamp(moment: datetime | None = None) -> str:
    """RFC 3339 as Go prints a Postgres timestamp: microseconds, trailing zeros trimmed, ``Z``."""
    moment = moment or datetime.now(UTC)
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def encode(value: Any) -> str:
    """Compact JSON with Go's default escaping, so no client comes to rely on Python's spelling."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(raw, escaped)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


@dataclass(frozen=True)
class SimUser:
    """A deployment user; each distinct username behind a token is one user with its own uuid."""

    id: str
    username: str

    @property
    def email(self) -> str:
        return f"{self.username}@example.com"


@dataclass(eq=False)
class SimFile:
    """An uploaded chat file; ``media_type`` is the sniffed type, never the declared one (2a)."""

    id: str
    owner_id: str
    name: str
    media_type: str
    data: bytes


@dataclass(eq=False)
class SimChat:
    """One chat as chatd stores it.

    ``messages`` holds the user-visible rows in id order as wire dicts; rows soft-deleted by an edit
    are removed from it (they are invisible to every endpoint), and the hidden system messages are
    never stored. ``parts`` buffers the ``message_part`` events of the running turn for snapshots
    (in the late dialect only the current preview's: they restart with every persisted message and
    every attempt). ``pending_calls`` are the client tool calls (``tool-call`` parts) a
    ``requires_action`` chat waits on.

    The late dialect's stream loop state (coder/coder coderd/x/chatd/stream_loop.go): the chat's
    ``history_version`` (bumped by every change to its messages), ``generation_attempt`` (bumped by
    every model call the worker starts, a retry's too), the number of the last part of the current
    preview (``part_seq``), a pending retry's payload (``retry_state``, until the next attempt starts),
    ``queue_version`` and whether messages were ever deleted (``rewritten``).
    """

    id: str
    owner: str
    owner_id: str
    title: str
    model_config_id: str
    status: str = "pending"
    workspace_id: str | None = None
    mcp_server_ids: list[str] = field(default_factory=list)
    organization_id: str = ""
    client_type: str = "api"
    plan_mode: str = ""
    """G2's ``codersdk.ChatPlanMode``: ``plan`` while the agent only plans, empty otherwise."""
    labels: dict[str, str] = field(default_factory=dict)
    archived: bool = False
    pin_order: int = 0
    last_error: JsonDict | None = None
    """ChatError fields (``message``, ``kind``, ``retryable``); G1 shows only the message."""
    messages: list[JsonDict] = field(default_factory=list)
    queue: list[JsonDict] = field(default_factory=list)
    parts: list[JsonDict] = field(default_factory=list)
    pending_calls: list[JsonDict] = field(default_factory=list)
    diff_status: JsonDict | None = None
    diff: JsonDict = field(default_factory=dict)
    last_read_id: int = 0
    history_version: int = 0
    generation_attempt: int = 0
    part_seq: int = 0
    retry_state: JsonDict | None = None
    queue_version: int = 0
    rewritten: bool = False
    parent_id: str | None = None
    """The chat that spawned this one as a sub-agent (``parent_chat_id``); None for a root chat."""
    children: list[SimChat] = field(default_factory=list)
    """A root chat's sub-agent chats, oldest first (the newest source's ``children``)."""
    last_turn_summary: str | None = None
    summary: str | None = None
    """The late dialect's summaries (``last_turn_summary``, the whole chat's ``summary``): null until
    the summary worker wrote one after a turn."""
    created_at: str = field(default_factory=timestamp)
    updated_at: str = field(default_factory=timestamp)

    @property
    def has_unread(self) -> bool:
        """True when an assistant message is newer than the read cursor that stream sockets move."""
        return any(m["role"] == "assistant" and m["id"] > self.last_read_id for m in self.messages)


def part(kind: str, **fields: Any) -> JsonDict:
    """A ChatMessagePart: ``type``, ``text``, the variant's own fields, then the zero-valued quirk keys."""
    body: JsonDict = {"type": kind, "text": ""}
    body.update(fields)
    for key, zero in _ZERO_PART_FIELDS.items():
        body.setdefault(key, zero)
    return body


def error_body(message: str, detail: str | None = None, validations: Sequence[JsonDict] = ()) -> JsonDict:
    """Coder's ``Response``: ``detail`` and ``validations`` are omitted when empty (section 1)."""
    body: JsonDict = {"message": message}
    if detail:
        body["detail"] = detail
    if validations:
        body["validations"] = list(validations)
    return body


def chat_json(chat: SimChat, *, promoted: bool = False) -> JsonDict:
    """A full Chat (3.1). build/agent/parent ids are omitted: the simulator builds no workspaces.

    G2 (codersdk/chats.go, newest): ``organization_id`` after ``id``; ``last_error`` a ChatError
    object with omitempty; ``last_turn_summary``/``summary`` null until generated; ``shared``,
    ``client_type`` and ``children`` (always ``[]`` on a root chat) always present.
    """
    body: JsonDict = {"id": chat.id}
    if promoted:
        body["organization_id"] = chat.organization_id
    body["owner_id"] = chat.owner_id
    if chat.workspace_id is not None:
        body["workspace_id"] = chat.workspace_id
    if chat.parent_id is not None:
        body["parent_chat_id"] = chat.parent_id
    body.update(
        root_chat_id=chat.parent_id or chat.id,
        last_model_config_id=chat.model_config_id,
        title=chat.title,
        status=chat.status,
    )
    if promoted and chat.plan_mode:  # codersdk.Chat: PlanMode (omitempty) after Status and Mode
        body["plan_mode"] = chat.plan_mode
    if not promoted:
        body["last_error"] = chat.last_error["message"] if chat.last_error else None
    elif chat.last_error:
        body["last_error"] = dict(chat.last_error)
    if promoted:
        body.update(last_turn_summary=chat.last_turn_summary, summary=chat.summary)
    if chat.diff_status is not None:
        body["diff_status"] = chat.diff_status
    body.update(created_at=chat.created_at, updated_at=chat.updated_at, archived=chat.archived)
    if promoted:
        body["shared"] = False
    body.update(
        pin_order=chat.pin_order,
        mcp_server_ids=list(chat.mcp_server_ids),
        labels=dict(chat.labels),
        has_unread=chat.has_unread,
    )
    if promoted:  # one level deep: a child chat's own children are always empty
        body.update(
            client_type=chat.client_type, children=[chat_json(c, promoted=True) for c in chat.children]
        )
    return body


def watch_event(kind: str, chat: SimChat, *, promoted: bool = False) -> JsonDict:
    """A ChatWatchEvent: chatd's partial Chat, with Go zero values where it fills nothing (4.8).

    UNCERTAIN for G2: which keys chatd fills; the G1 set is kept, with G2's omitempty ``last_error``
    absent and its new always-present keys at their zero values.
    """
    partial: JsonDict = {"id": chat.id}
    if promoted:
        partial["organization_id"] = chat.organization_id
    partial.update(
        owner_id=chat.owner_id,
        title=chat.title,
        status=chat.status,
        created_at=chat.created_at,
        updated_at=chat.updated_at,
    )
    if chat.parent_id is not None:
        partial["parent_chat_id"] = chat.parent_id
    partial.update(root_chat_id=chat.parent_id or chat.id, last_model_config_id=NIL_UUID)
    if promoted:  # the summary writes publish the chat as read, with either summary as it stands
        partial.update(
            last_turn_summary=chat.last_turn_summary,
            summary=chat.summary,
            shared=False,
            client_type="",
            children=None,
        )
    else:
        partial["last_error"] = None
    partial.update(archived=False, pin_order=0, mcp_server_ids=None, labels=None, has_unread=False)
    if kind == "diff_status_change" and chat.diff_status is not None:
        partial["diff_status"] = chat.diff_status
    return {"kind": kind, "chat": partial}


# Illustrative AI Gateway prices, in micro-dollars per token ($3 and $15 per million tokens).
_INPUT_PRICE: Final = 3
_OUTPUT_PRICE: Final = 15


def cost_json(chat: SimChat) -> JsonDict:
    """A ChatCost (codersdk/chats.go, newest): every model call of the chat, priced by its usage.
    UNCERTAIN: the gateway's own prices; the simulator's are illustrative."""
    usages = [m["usage"] for m in chat.messages if m.get("usage")]
    micros = sum(
        u.get("input_tokens", 0) * _INPUT_PRICE + u.get("output_tokens", 0) * _OUTPUT_PRICE for u in usages
    )
    return {
        "chat_id": chat.id,
        "total_cost_micros": micros,
        "request_count": len(usages),
        "unpriced_request_count": 0,
    }


def diff_status_json(chat_id: str, fields: Mapping[str, Any]) -> JsonDict:
    """A ChatDiffStatus with its always-present keys filled in (3.7)."""
    return {"chat_id": chat_id, **_DIFF_STATUS_DEFAULTS, **fields}


def message_json(
    message_id: int,
    chat: SimChat,
    role: str,
    content: list[JsonDict],
    *,
    created_by: str | None = None,
    usage: JsonDict | None = None,
) -> JsonDict:
    """A ChatMessage (3.2): ``created_by`` only on user rows, ``content``/``usage`` omitted when empty."""
    body: JsonDict = {"id": message_id, "chat_id": chat.id}
    if created_by:
        body["created_by"] = created_by
    body.update(model_config_id=chat.model_config_id, created_at=timestamp(), role=role)
    if content:
        body["content"] = content
    if usage:
        body["usage"] = usage
    return body


def queued_json(queued_id: int, chat_id: str, content: list[JsonDict]) -> JsonDict:
    """A ChatQueuedMessage (3.5); its id comes from the queue's own sequence."""
    return {"id": queued_id, "chat_id": chat_id, "content": content, "created_at": timestamp()}


def messages_page_json(chat: SimChat, before_id: int, limit: int, after_id: int = 0) -> JsonDict:
    """GET /messages: newest first, ``before_id`` pages backwards, the queue only on the first page.

    G2's ``after_id`` pages forwards: messages with a larger id, oldest first (reference 2).
    UNCERTAIN: whether an ``after_id`` page lists the queue; it does here, as it has no ``before_id``.
    """
    if after_id:
        newer = [m for m in chat.messages if m["id"] > after_id and (not before_id or m["id"] < before_id)]
        page, more = newer[:limit], len(newer) > limit
    else:
        older = [m for m in reversed(chat.messages) if not before_id or m["id"] < before_id]
        page, more = older[:limit], len(older) > limit
    return {
        "messages": page,
        "queued_messages": list(chat.queue) if not before_id else [],
        "has_more": more,
    }


def user_json(user: SimUser, organization_id: str, created_at: str) -> JsonDict:
    """The subset of Coder's User object a client reads (GET /api/v2/users/me)."""
    return {
        "id": user.id,
        "username": user.username,
        "name": "",
        "email": user.email,
        "created_at": created_at,
        "last_seen_at": created_at,
        "status": "active",
        "login_type": "password",
        "organization_ids": [organization_id],
        "roles": [],
        "avatar_url": "",
    }


def stream_event(kind: str, chat_id: str, **payload: Any) -> JsonDict:
    """A ChatStreamEvent (4.3): exactly one payload key next to ``type`` and ``chat_id``."""
    return {"type": kind, "chat_id": chat_id, **payload}


def status_event(chat: SimChat) -> JsonDict:
    return stream_event("status", chat.id, status={"status": chat.status})


def action_required_event(chat: SimChat) -> JsonDict:
    """G2's ``action_required``: the client tool calls a ``requires_action`` chat waits on, each as
    ``{tool_call_id, tool_name, args}`` (codersdk ChatStreamActionRequired / ChatStreamToolCall, built
    by chatd's stream loop ``actionRequiredFromHistory`` from the unanswered calls of the last
    assistant message)."""
    calls = [
        {"tool_call_id": c["tool_call_id"], "tool_name": c["tool_name"], "args": c["args"]}
        for c in chat.pending_calls
    ]
    return stream_event("action_required", chat.id, action_required={"tool_calls": calls})


def message_event(chat_id: str, message: JsonDict) -> JsonDict:
    return stream_event("message", chat_id, message=message)


def part_event(
    chat_id: str, role: str, body: JsonDict, numbers: tuple[int, int, int] | None = None
) -> JsonDict:
    """A ``message_part``; the late dialect numbers it (codersdk ChatStreamMessagePart at coder/coder
    004053e8: ``history_version``, ``generation_attempt``, ``seq`` after ``part``, all omitempty)."""
    payload: JsonDict = {"role": role, "part": body}
    if numbers is not None:
        keys = ("history_version", "generation_attempt", "seq")
        payload.update((key, value) for key, value in zip(keys, numbers, strict=True) if value)
    return stream_event("message_part", chat_id, message_part=payload)


def preview_reset_event(chat_id: str) -> JsonDict:
    """The late dialect's ``preview_reset``: no payload key at all (ChatStreamEvent omitempty)."""
    return stream_event("preview_reset", chat_id)


def history_reset_event(chat_id: str) -> JsonDict:
    """The late dialect's ``history_reset``, followed by the whole history as ``message`` events."""
    return stream_event("history_reset", chat_id)


def queue_event(chat: SimChat) -> JsonDict:
    """A ``queue_update``; an empty queue omits ``queued_messages`` entirely (4.3)."""
    if not chat.queue:
        return stream_event("queue_update", chat.id)
    return stream_event("queue_update", chat.id, queued_messages=list(chat.queue))


def stream_frames(framing: Framing, batch: list[JsonDict]) -> list[tuple[str, list[JsonDict]]]:
    """The text frames one stream batch becomes in each G1 build, each with the events it carries (4.2)."""
    if framing == "bare":
        return [(encode(batch) + "\n", batch)]
    if framing == "envelope-single":
        return [(encode({"type": "data", "data": event}), [event]) for event in batch]
    return [(encode({"type": "data", "data": batch}), batch)]


def watch_frame(framing: Framing, event: JsonDict) -> str:
    """Watch events are never batched: one envelope (``data`` an object) or one bare object (4.8)."""
    if framing == "bare":
        return encode(event) + "\n"
    return encode({"type": "data", "data": event})
