"""Generation-independent models of Coder chats, as the rest of the bridge sees them.

Coder's chat API exists in several generations with different paths, framings and status names
(see the API reference, section 0). Each backend turns its wire JSON into these models, so nothing
above ``bridge.coder`` depends on one generation. Unknown keys are ignored and unknown part types,
statuses and event types are kept by name rather than rejected: a newer Coder must never crash us.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, NewType

from pydantic import BaseModel, ConfigDict, Field

ChatId = NewType("ChatId", str)

IMAGE_TYPES = frozenset({"image/gif", "image/jpeg", "image/png", "image/webp"})
"""What every Coder chat-file upload accepts (reference section 2a; SVG deliberately excluded)."""
ATTACHMENT_TYPES = IMAGE_TYPES | {
    "application/json",
    "application/pdf",
    "text/csv",
    "text/markdown",
    "text/plain",
}
"""``codersdk.AllChatAttachmentMediaTypes`` of the promoted API (Coder 2.37+)."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class ChatPhase(StrEnum):
    """What a chat is doing, in words every generation's statuses map onto."""

    STARTING = "starting"  # accepted, waiting for a worker (G1 "pending")
    WORKING = "working"  # the agent is running a turn
    IDLE = "idle"  # nothing to do: finished a turn, interrupted, or new
    NEEDS_USER = "needs_user"  # the agent waits for a person (G1 "paused", G2 "requires_action")
    DONE = "done"  # the task is complete (G1 "completed")
    ERROR = "error"  # the last turn failed
    UNKNOWN = "unknown"  # a status this bridge does not know yet

    @property
    def busy(self) -> bool:
        """Whether a turn is under way, so new messages queue and the stream has work to show."""
        return self in (ChatPhase.STARTING, ChatPhase.WORKING)


class ChatStatus(_Model):
    """A chat's phase plus the server's own status name, which is what users are shown."""

    phase: ChatPhase
    name: str


class Part(_Model):
    """One piece of message content; fields not used by a part's ``type`` stay at their defaults.

    A ``file`` part names its file in ``name`` in the newest source (codersdk ChatMessagePart:
    ``file_name`` belongs to ``file-reference``); the wire readers put either in ``file_name``.
    """

    type: str
    text: str = ""
    tool_call_id: str = ""
    tool_name: str = ""
    args: Any = None
    args_delta: str = ""
    result: Any = None
    result_delta: str = ""
    is_error: bool = False
    url: str = ""
    title: str = ""
    media_type: str = ""
    file_id: str = ""
    file_name: str = ""


class Usage(_Model):
    """What one model call cost in tokens (``codersdk.ChatMessageUsage``, on assistant messages);
    every field is optional on the wire, so an unknown count is ``None``, not 0."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    reasoning_tokens: int | None = None
    cache_creation_tokens: int | None = None
    cache_read_tokens: int | None = None
    context_limit: int | None = None
    """The model's context window, in tokens."""


class Message(_Model):
    """A persisted chat message. ``id`` increases monotonically and is the stream cursor."""

    id: int
    role: str
    content: tuple[Part, ...] = ()
    created_at: datetime | None = None
    usage: Usage | None = None

    @property
    def text(self) -> str:
        """The message's visible text: its text parts joined in order."""
        return "".join(p.text for p in self.content if p.type == "text")

    @property
    def reasoning(self) -> str:
        """The model's reasoning behind the message: its reasoning parts joined in order."""
        return "".join(p.text for p in self.content if p.type == "reasoning")


class QueuedMessage(_Model):
    """A follow-up Coder holds until the agent is free; its id is from a separate sequence."""

    id: int
    content: tuple[Part, ...] = ()
    created_at: datetime | None = None

    @property
    def text(self) -> str:
        """The queued message's text parts joined."""
        return "".join(p.text for p in self.content if p.type == "text")


class ChatDiffStatus(_Model):
    """The pull request (or branch) Coder tracks for a chat's changes (reference 3.7).

    Every field is optional on the wire in some build (the oldest have no PR title or draft flag),
    so all of them default; ``url`` is a PR's page once one is open, else the branch's.
    """

    url: str = ""
    pull_request_state: str = ""
    pull_request_title: str = ""
    pull_request_draft: bool = False
    changes_requested: bool = False
    additions: int = 0
    deletions: int = 0
    changed_files: int = 0
    pr_number: int | None = None
    base_branch: str = ""
    head_branch: str = ""


class FileChange(_Model):
    """One file a diff touches, with its line counts."""

    path: str
    additions: int = 0
    deletions: int = 0


class ChatDiff(_Model):
    """What ``GET /chats/{id}/diff`` resolves (reference 3.8), with the diff read per file."""

    chat_id: ChatId
    provider: str = ""
    remote_origin: str = ""
    branch: str = ""
    pull_request_url: str = ""
    files: tuple[FileChange, ...] = ()


class ErrorKind(StrEnum):
    """What kind of failure Coder reports, so the person can be told what to do about it.

    ``codersdk.ChatErrorKind`` in the newest source (coder/coder codersdk/chats.go at 004053e8,
    ``AllChatErrorKinds``; ``startup_timeout`` from coderd/x/chatd/chaterror/message.go at
    0033a8d7). A kind this bridge does not know reads as ``GENERIC``.
    """

    GENERIC = "generic"
    OVERLOADED = "overloaded"
    RATE_LIMIT = "rate_limit"
    TIMEOUT = "timeout"
    STARTUP_TIMEOUT = "startup_timeout"
    STREAM_SILENCE_TIMEOUT = "stream_silence_timeout"
    AUTH = "auth"
    """The model provider refused the credentials (a wrong key or missing permissions)."""
    CONFIG = "config"
    USAGE_LIMIT = "usage_limit"
    MISSING_KEY = "missing_key"
    """The provider key the chat was started with is no longer available."""
    PROVIDER_DISABLED = "provider_disabled"
    CONTENT_FILTER = "content_filter"
    HOOK_DISPATCH_FAILED = "hook_dispatch_failed"
    HOOK_DENIED = "hook_denied"

    @classmethod
    def read(cls, raw: object) -> ErrorKind:
        """A kind from the wire; absent or unknown is ``GENERIC``."""
        try:
            return cls(str(raw))
        except ValueError:
            return cls.GENERIC


class BackendNotice(StrEnum):
    """A failure the backend itself observed rather than one Coder reported: the 2025 AI-SDK API
    (G0a) keeps no queue and ends a reply with its request, so its backend reports these. A fact
    only: the Slack renderers word it (``bridge.slack.failures``)."""

    NONE = ""
    REPLY_CUT_BY_RESTART = "reply_cut_by_restart"
    """The bridge restarted while a reply streamed; the rest of that reply is lost."""
    FOLLOW_UP_UNSENT = "follow_up_unsent"
    """A held follow-up could not be sent now (the message is the error); it stays held."""
    FOLLOW_UP_REFUSED = "follow_up_refused"
    """Coder refused a held follow-up for good (the message is the error); it was dropped."""


class ChatFailure(_Model):
    """Why a turn failed, as Coder classifies it (``codersdk.ChatError``): in a chat's
    ``last_error`` and a stream ``error`` event. Older builds send only the message."""

    message: str
    detail: str = ""
    """Provider-specific context Coder shows next to the message, when it has any."""
    kind: ErrorKind = ErrorKind.GENERIC
    provider: str = ""
    retryable: bool = False
    status_code: int | None = None
    """The upstream provider's HTTP status, best effort."""
    notice: BackendNotice = BackendNotice.NONE


class Chat(_Model):
    """A Coder chat's metadata (no messages)."""

    id: ChatId
    title: str = ""
    status: ChatStatus
    owner_id: str = ""
    """The Coder user the chat belongs to (the 2025 AI-SDK API does not say)."""
    labels: dict[str, str] = Field(default_factory=dict)
    archived: bool = False
    last_error: ChatFailure | None = None
    diff_status: ChatDiffStatus | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    warnings: tuple[str, ...] = ()
    """What Coder could not honour when it made the chat (an MCP server it cannot use, say); only the
    newest builds say, on the chat a create answers with."""
    last_turn_summary: str = ""
    """Coder's summary of the chat's last finished turn (newest builds; written by a background
    worker after the turn ends, announced by the watch kind ``summary_change``); empty until then."""
    summary: str = ""
    """Coder's summary of the whole chat (newest builds, ``chat_summary_change``); empty until then."""
    parent_chat_id: str = ""
    """The chat that delegated this one to a sub-agent; empty for a root chat."""
    children: tuple[Chat, ...] = ()
    """A root chat's sub-agent chats (newest builds; one level deep, as Coder caps it)."""
    plan_mode: bool = False
    """The chat is in plan mode (``codersdk.Chat.PlanMode`` is ``"plan"``): the agent plans, and
    changes nothing, until someone takes it out of plan mode."""


class SendResult(_Model):
    """What became of a message sent to a chat: delivered into history, or queued.

    Newer builds add ``messages``, every user-visible message the send inserted (a queued send on a
    chat in error promotes the queue head, which is then among them), and ``warnings`` for the
    person (e.g. an MCP server that is unavailable).
    """

    queued: bool
    message: Message | None = None
    queued_message: QueuedMessage | None = None
    messages: tuple[Message, ...] = ()
    warnings: tuple[str, ...] = ()


class EditResult(_Model):
    """What an edit made: the new message (a new id), and in newer builds the ids of the messages it
    removed and ``warnings`` for the person (codersdk EditChatMessageResponse)."""

    message: Message
    deleted_message_ids: tuple[int, ...] = ()
    warnings: tuple[str, ...] = ()


class Capabilities(_Model):
    """What a generation's API does by itself; what it lacks, the bridge does or says plainly it can't.

    The relay and the tests read this instead of the generation's name, so a behaviour that differs
    by generation is decided in one place.
    """

    labels: bool = True
    """Chats carry the ``slack_*`` labels in Coder (otherwise the bridge remembers them itself)."""
    queue: Literal["coder", "bridge"] = "coder"
    """Who holds a follow-up sent while the agent works: Coder's queue, or the bridge's table."""
    archive: Literal["archive", "delete", "refuse"] = "archive"
    """What the archive reaction does: archive, delete the chat (an operator's opt-in), or nothing."""
    failure_reasons: bool = True
    """Coder says why a turn failed (the 2025 API's line stream may just end, reason unsaid)."""
    replies_outlive_connection: bool = True
    """A turn goes on when the bridge's connection drops or the bridge restarts, and the bridge picks
    it up again; not so where the reply is the answer to the bridge's own request."""
    edits: bool = True
    """Coder edits a message already sent (otherwise the edit is refused and the thread says so)."""
    stored_files: bool = True
    """Coder keeps uploaded files and messages name them by id (otherwise they go inline, images only)."""
    watch: bool = True
    """Coder tells of changes made elsewhere (titles, pull requests, messages from its own UI)."""
    retry_events: bool = True
    """Coder says when it retries a failed model call (the 2025 API's provider SDK retries silently)."""
    waits_for_user: bool = False
    """The agent can stop a turn to wait for a person (G2's ``requires_action``, while a client-executed
    tool's result is due); a reply in the thread ends the wait. G1's ``paused`` is never set."""
    plan_mode: bool = False
    """A chat can start in plan mode and be taken out of it (G2's ``plan_mode``); the agent asks its
    questions and proposes its plan through tools Coder's clients answer."""
    options: frozenset[str] = frozenset({"model", "workspace", "mcp"})
    """The per-chat options a new chat takes (``ChatOption`` names); the others are refused."""
    rename: Literal["coder", "try", "bridge"] = "coder"
    """Who keeps a title a person gives the thread in Slack: Coder, which renames the chat; Coder
    where the build can ("try": some builds of the generation take a title, others read and ignore
    it, so the bridge asks and reads the chat back); or the bridge, for the thread only."""


class ChatCost(_Model):
    """What a chat's whole tree (it and its sub-agents) cost through Coder's AI Gateway
    (``codersdk.ChatCost``, ``GET /chats/{id}/cost``, newest builds)."""

    total_cost_micros: int = 0
    """US dollars in millionths; requests whose model has no price count nothing."""
    request_count: int = 0
    unpriced_request_count: int = 0
    """Requests with usage whose model had no recorded price: the total leaves them out."""


class CoderUser(_Model):
    """The user a session token belongs to."""

    id: str
    username: str
    organization_ids: tuple[str, ...] = ()


Finding = Literal["yes", "no", "unknown"]


class ServerFacts(_Model):
    """What a read-only look at the server tells of the behaviours that differ between builds
    (reference 0a); ``bridge doctor`` prints it. "unknown" where only a change could tell."""

    version: str = ""
    """``GET /api/v2/buildinfo``'s version; empty when the server does not say."""
    mcp_servers: str = ""
    """The path the MCP server listing answered at; empty when none did (or the API has none)."""
    promote_accepted: Finding = "unknown"
    """Promote answers 202 without the message ("yes") or 200 with it ("no"): seen only by a promote."""
    label_filters: Finding = "unknown"
    """The chat list honours ``label=`` filters; "no" if a filter matching nothing listed chats."""
    classified_errors: Finding = "unknown"
    """A chat's ``last_error`` carries a ``kind``; "unknown" unless some listed chat has an error."""
    provider_availability: Finding = "unknown"
    """The model listing says which providers are unavailable, and why."""
    unavailable_providers: tuple[str, ...] = ()
    """Providers the model listing reports unavailable, each as ``name (reason)``."""


class InputPart(_Model):
    """Content sent to Coder: text, or an uploaded file referenced by id."""

    type: Literal["text", "file"]
    text: str = ""
    file_id: str = ""

    @classmethod
    def of_text(cls, text: str) -> InputPart:
        """A text part."""
        return cls(type="text", text=text)

    @classmethod
    def of_file(cls, file_id: str) -> InputPart:
        """A part referencing a file uploaded with ``upload_file``."""
        return cls(type="file", file_id=file_id)


ChatOption = Literal["model", "workspace", "mcp", "plan"]
"""What a new chat can be given besides its first message: a model, a workspace, MCP servers, and
whether it starts in plan mode."""


class Choice(_Model):
    """One value an option can take: Coder's id plus the names a person may type instead."""

    id: str
    name: str
    """What people are shown (and may type)."""
    aliases: tuple[str, ...] = ()
    """Other names that select it (a model's provider id, an MCP server's slug …)."""
    unavailable: str = ""
    """Why it cannot be chosen now, as Coder says it: ``disabled`` for an MCP server an
    administrator switched off, or the ``unavailable_reason`` of a model's provider
    (``missing_api_key``, ``fetch_failed``, ``user_api_key_required`` …); empty when usable."""

    def matches(self, typed: str) -> bool:
        """Whether ``typed`` names this choice: its id, name or an alias, ignoring case."""
        wanted = typed.strip().lower()
        return wanted in (self.id.lower(), self.name.lower(), *(a.lower() for a in self.aliases))


class ChatOptions(_Model):
    """The resolved options of a new chat: Coder ids, ready for ``create_chat``."""

    model: str | None = None
    workspace: str | None = None
    mcp: tuple[str, ...] = ()
    plan: bool = False


NO_OPTIONS = ChatOptions()
"""A chat created as Coder's defaults have it."""


# Stream events, normalized. Each stream batch is a list of these.


class StatusEvent(_Model):
    """The chat's status changed (or, first in every snapshot, is reported)."""

    kind: Literal["status"] = "status"
    status: ChatStatus


class PartEvent(_Model):
    """A transient delta of the message being generated; never persisted, has no id.

    The newest Coder numbers deltas (reference 0a, item 3): ``history_version`` and
    ``generation_attempt`` name the preview they belong to (a newer pair is a newer preview, an older
    one is stale), ``seq`` counts from 1 within it (a ``seq`` already seen is a replay). Older builds
    send none of them: 0 means "not numbered".
    """

    kind: Literal["part"] = "part"
    role: str
    part: Part
    history_version: int = 0
    generation_attempt: int = 0
    seq: int = 0


class MessageEvent(_Model):
    """A message was persisted; authoritative over the deltas that preceded it. One for an id already
    received is a newer revision of that message (Coder rewrote it): it replaces the old one."""

    kind: Literal["message"] = "message"
    message: Message


class PreviewResetEvent(_Model):
    """The newest Coder voids the reply being streamed: every delta since the last persisted message
    is gone (a retried model call, a changed history), and numbering restarts at ``seq`` 1. It also
    ends every connect's snapshot, before the current step's deltas are sent again."""

    kind: Literal["preview_reset"] = "preview_reset"


class HistoryResetEvent(_Model):
    """The newest Coder rewrote the chat's history (an edit or deletion removed messages): the
    messages that follow, up to the next ``PreviewResetEvent``, are the whole history; any message
    known before and not among them is gone."""

    kind: Literal["history_reset"] = "history_reset"


class QueueEvent(_Model):
    """The full current queue of follow-ups (empty when the queue drained)."""

    kind: Literal["queue"] = "queue"
    queue: tuple[QueuedMessage, ...] = ()


class ErrorEvent(_Model):
    """Processing failed, or the stream itself reported an error (``error_kind`` ``stream``)."""

    kind: Literal["error"] = "error"
    message: str
    retryable: bool = False
    error_kind: str = ""
    detail: str = ""
    provider: str = ""
    status_code: int | None = None
    notice: BackendNotice = BackendNotice.NONE

    @property
    def failure(self) -> ChatFailure:
        """The error as Coder classified it (or as the backend observed it: ``notice``)."""
        return ChatFailure(
            message=self.message,
            detail=self.detail,
            kind=ErrorKind.read(self.error_kind),
            provider=self.provider,
            retryable=self.retryable,
            status_code=self.status_code,
            notice=self.notice,
        )

    @classmethod
    def of(cls, failure: ChatFailure) -> ErrorEvent:
        """The event that reports ``failure`` (a chat's ``last_error`` shown as its stream would)."""
        return cls(
            message=failure.message,
            retryable=failure.retryable,
            error_kind=failure.kind.value,
            detail=failure.detail,
            provider=failure.provider,
            status_code=failure.status_code,
        )


class RetryEvent(_Model):
    """Coder is retrying a failed model call; the chat stays busy."""

    kind: Literal["retry"] = "retry"
    attempt: int
    delay_ms: int
    error: str
    error_kind: str = ""
    """Newer builds classify the failed attempt (``ChatStreamRetry.kind``)."""
    provider: str = ""
    status_code: int | None = None


class ClientCall(_Model):
    """A call of a client-executed tool that a chat waits on (``codersdk.ChatStreamToolCall``): the
    id its result must name, the tool, and the arguments the model gave it."""

    tool_call_id: str
    tool_name: str
    args: Any = None


class ActionRequiredEvent(_Model):
    """The agent stopped for a person: newer Coder names the tool calls that wait for them."""

    kind: Literal["action_required"] = "action_required"
    calls: tuple[ClientCall, ...] = ()

    @property
    def tool_names(self) -> tuple[str, ...]:
        """The names of the tools waited on, in Coder's order."""
        return tuple(call.tool_name for call in self.calls)


class QuestionOption(_Model):
    """One answer an agent offers to a question it asks (``ask_user_question``)."""

    label: str
    description: str = ""


class Question(_Model):
    """One question an agent asks its person (``ask_user_question``): a short header, the question,
    and the answers it offers (none: any words will do)."""

    header: str = ""
    text: str
    options: tuple[QuestionOption, ...] = ()


class ToolResult(_Model):
    """A client's result for a tool call its chat waits on (``codersdk.ToolResult``): ``output`` is
    any JSON value, sent as it is."""

    tool_call_id: str
    output: Any
    is_error: bool = False


class ConnectedEvent(_Model):
    """A stream (re)connected: what follows is a fresh snapshot, so per-turn deltas restart."""

    kind: Literal["connected"] = "connected"
    after_id: int | None = None


StreamEvent = (
    StatusEvent
    | PartEvent
    | MessageEvent
    | PreviewResetEvent
    | HistoryResetEvent
    | QueueEvent
    | ErrorEvent
    | RetryEvent
    | ActionRequiredEvent
    | ConnectedEvent
)


# Watch events: changes across all of the token owner's chats.


class WatchKind(StrEnum):
    """The chat-list changes the bridge acts on (reference 4.8); other kinds are skipped."""

    CREATED = "created"
    STATUS_CHANGE = "status_change"
    TITLE_CHANGE = "title_change"
    DIFF_STATUS_CHANGE = "diff_status_change"
    DELETED = "deleted"
    ACTION_REQUIRED = "action_required"
    """G2: the chat now waits for its person (``requires_action``); sent instead of a status change."""
    SUMMARY_CHANGE = "summary_change"
    """Newest builds: the chat's ``last_turn_summary`` was written (after the turn ended)."""
    CHAT_SUMMARY_CHANGE = "chat_summary_change"
    """Newest builds: the chat's whole-chat ``summary`` was written."""


class WatchEvent(_Model):
    """One change to a chat. ``chat`` is Coder's partial chat: a hint, re-read it for details."""

    kind: WatchKind
    chat: Chat


WatchBatch = list[WatchEvent | ConnectedEvent | ErrorEvent]
"""What a watch socket yields: ``ConnectedEvent`` first after every (re)connect, as for streams."""
