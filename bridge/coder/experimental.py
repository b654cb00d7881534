"""The G1 backend: Coder's experimental Chats API under ``/api/experimental/chats``.

Paths and request bodies live here; the JSON shapes are read by ``experimental_wire``, retries and
error mapping happen in ``rest``, and the stream is the generic ``ReconnectingStream``. The base path,
generation name and chat/event parsers are one ``ChatsApi`` value, so the promoted G2 API (``v2``),
whose requests are the same, reuses this class with its own.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, Literal
from urllib.parse import quote

from bridge.coder import facts
from bridge.coder.catalog import (
    list_choices,
    list_workspaces,
    parse_mcp_servers,
    parse_models,
    provider_problems,
)
from bridge.coder.errors import CoderError, CoderNotFound, CoderRejected, CoderUnavailable
from bridge.coder.experimental_wire import (
    PLAN_MODE,
    decode,
    parse_chat,
    parse_diff,
    parse_edit_result,
    parse_message,
    parse_message_page,
    parse_promoted,
    parse_queued,
    parse_send_result,
    parse_stream_event,
    parse_watch_event,
)
from bridge.coder.framing import RawEvent
from bridge.coder.observe import NOOP_OBSERVER, CoderObserver
from bridge.coder.rest import DEFAULT_RETRY, DEFAULT_TIMEOUT, RestClient, RetryPolicy, read_json
from bridge.coder.stream import DEFAULT_RECONNECT, ReconnectingStream, ReconnectPolicy, websocket_url
from bridge.coder.types import (
    IMAGE_TYPES,
    NO_OPTIONS,
    Capabilities,
    Chat,
    ChatCost,
    ChatDiff,
    ChatId,
    ChatOption,
    ChatOptions,
    Choice,
    CoderUser,
    EditResult,
    Finding,
    InputPart,
    Message,
    QueuedMessage,
    SendResult,
    ServerFacts,
    StreamEvent,
    ToolResult,
    WatchEvent,
)
from bridge.coder.users import fetch_me
from bridge.coder.watch import ChatWatch, open_watch

log = logging.getLogger(__name__)

CHATS = "/api/experimental/chats"
_MAX_PAGE = 200  # Coder answers 400 to a messages limit outside 1..200


@dataclass(frozen=True)
class ChatsApi:
    """What tells one generation's chat routes apart when its requests are the same: base and parsers."""

    generation: str
    base: str
    parse_chat: Callable[[Any], Chat]
    parse_stream_event: Callable[[RawEvent], StreamEvent | None]
    parse_watch_event: Callable[[RawEvent], WatchEvent | None]
    upload_types: frozenset[str]

    def path(self, chat_id: str, *rest: str) -> str:
        """``{base}/{chat}/…`` with the chat id escaped."""
        return "/".join((self.base, quote(chat_id, safe=""), *rest))


G1_API = ChatsApi("experimental", CHATS, parse_chat, parse_stream_event, parse_watch_event, IMAGE_TYPES)
"""Images only: the envelope-era builds allow nothing else (later G1 builds add text/plain, which
cannot be told from the API, so the bridge stays with what every G1 build accepts)."""


def _content(parts: Sequence[InputPart]) -> list[dict[str, str]]:
    """ChatInputPart JSON; only the keys a part's type uses, as Coder validates them."""
    return [
        {"type": "text", "text": p.text} if p.type == "text" else {"type": "file", "file_id": p.file_id}
        for p in parts
    ]


def _content_disposition(filename: str) -> str:
    """An attachment header that survives any file name (HTTP headers must be ASCII)."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename)
    value = f'attachment; filename="{fallback}"'
    if fallback != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return value


def _already_in_state(exc: CoderRejected) -> bool:
    """Coder's 400 for archiving an archived chat (or the reverse): the goal is already met."""
    return exc.status == 400 and "already" in exc.message.lower()


class ExperimentalBackend:
    """``CoderBackend`` for the G1 experimental API (``/api/experimental/chats``).

    ``organization_id`` is sent on chat creation, which later G1 builds require and earlier ones
    ignore; when not given it is the token owner's first organization, looked up once.
    """

    api: ClassVar[ChatsApi] = G1_API
    mcp_servers_paths: ClassVar[tuple[str, ...]] = ("/api/experimental/mcp/servers",)
    """Where MCP servers are listed, tried in order until one is not 404 (the one that answers is
    remembered); ``{organization}`` is the chats' organization. G1: codersdk ``MCPServerConfigs``
    of that era."""
    models_path: ClassVar[str] = CHATS + "/model-configs"
    """G1: ``GET /chats/model-configs`` (the uuids ``model_config_id`` takes)."""
    models_key: ClassVar[str | None] = None
    """Where the listing keeps the models: the body itself (G1) or one of its keys (G2)."""
    renames: ClassVar[Literal["coder", "try"]] = "try"
    """Whether PATCH takes a ``title``: the earliest G1 builds have no PATCH, those up to at least
    coderd/exp_chats.go at 002434b9 read ``title`` and ignore it, later ones apply it (coder/coder
    ``applyChatTitleUpdate``); nothing in the API tells them apart, so the bridge reads back."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        organization_id: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        ssl_context: ssl.SSLContext | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        reconnect: ReconnectPolicy = DEFAULT_RECONNECT,
        observer: CoderObserver = NOOP_OBSERVER,
    ) -> None:
        self._rest = RestClient(
            base_url, token, timeout=timeout, ssl_context=ssl_context, retry=retry, observer=observer
        )
        self._token = token
        self._organization_id = organization_id
        self._ssl_context = ssl_context
        self._reconnect = reconnect
        self._observer = observer
        self._mcp_path: str | None = None
        self._promote_accepted: Finding = "unknown"

    @property
    def generation(self) -> str:
        """The generation's short name: ``experimental`` here."""
        return self.api.generation

    @property
    def capabilities(self) -> Capabilities:
        """Coder does it all itself: labels, the queue, archiving, turns that outlive the bridge;
        renaming in the builds that can (``renames``)."""
        return Capabilities(rename=self.renames)

    @property
    def base_url(self) -> str:
        """The deployment URL without a trailing slash."""
        return self._rest.base_url

    def chat_url(self, chat_id: ChatId) -> str:
        """The chat in Coder's web UI (``/agents/{id}``)."""
        return f"{self.base_url}/agents/{quote(chat_id, safe='')}"

    @property
    def accepted_media_types(self) -> frozenset[str]:
        """The generation's upload allow-list (reference section 2a)."""
        return self.api.upload_types

    async def whoami(self) -> CoderUser:
        """``GET /api/v2/users/me``."""
        return await fetch_me(self._rest)

    async def create_chat(
        self,
        content: Sequence[InputPart],
        *,
        labels: Mapping[str, str],
        organization_id: str | None = None,
        options: ChatOptions = NO_OPTIONS,
    ) -> Chat:
        """``POST /chats``; not retried, since a retry after a lost answer would start a second chat."""
        body: dict[str, Any] = {"content": _content(content), "labels": dict(labels)}
        if options.model:
            body["model_config_id"] = options.model
        if options.workspace:
            body["workspace_id"] = options.workspace
        if options.mcp:
            body["mcp_server_ids"] = list(options.mcp)
        if options.plan:
            body["plan_mode"] = PLAN_MODE
        organization = organization_id or await self._default_organization()
        if organization:
            body["organization_id"] = organization
        response = await self._rest.call(
            "create_chat", "POST", self.api.base, idempotent=False, json_body=body
        )
        return decode(read_json(response), self.api.parse_chat, "chat")

    async def choices(self, option: ChatOption) -> list[Choice]:
        """What ``option`` can be set to on a new chat (see ``bridge.coder.catalog``)."""
        if option == "model":
            return await self._models()
        if option == "workspace":
            return await list_workspaces(self._rest)
        return (await self._mcp_listing())[1]

    async def _models(self) -> list[Choice]:
        path = await self._organization_path(self.models_path)
        return await list_choices(self._rest, path, partial(parse_models, key=self.models_key))

    async def _organization_path(self, template: str) -> str:
        """``template`` with the chats' organization for ``{organization}``."""
        if "{organization}" not in template:
            return template
        organization = await self._default_organization() or ""
        return template.format(organization=quote(organization, safe=""))

    async def _mcp_listing(self) -> tuple[str, list[Choice]]:
        """The MCP servers, and the path of ``mcp_servers_paths`` that listed them."""
        paths = [self._mcp_path] if self._mcp_path else self.mcp_servers_paths
        missing: CoderNotFound | None = None
        for template in paths:
            path = await self._organization_path(template)
            try:
                choices = await list_choices(self._rest, path, parse_mcp_servers)
            except CoderNotFound as exc:
                missing = exc
                continue
            self._mcp_path = template
            return path, choices
        assert missing is not None
        raise missing

    async def facts(self) -> ServerFacts:
        """What this server's build does, found by reading only (see ``ServerFacts``)."""
        mcp = ""
        try:
            mcp = (await self._mcp_listing())[0]
        except CoderRejected as exc:
            log.info("no MCP server listing answered: %s", exc)
        response = await self._rest.call(
            "facts", "GET", self.api.base, idempotent=True, params=facts.probe_filter()
        )
        filtered = read_json(response)
        everything = read_json(await self._rest.call("facts", "GET", self.api.base, idempotent=True))
        reported: Finding = "unknown"
        unavailable: tuple[str, ...] = ()
        try:
            response = await self._rest.call(
                "facts", "GET", await self._organization_path(self.models_path), idempotent=True
            )
            listed, unavailable = provider_problems(read_json(response))
            reported = "yes" if listed else "no"
        except CoderError as exc:
            log.info("the model listing did not answer: %s", exc)
        return ServerFacts(
            version=await facts.server_version(self._rest),
            mcp_servers=mcp,
            promote_accepted=self._promote_accepted,
            label_filters=facts.label_filters(filtered, everything),
            classified_errors=facts.classified_errors(everything),
            provider_availability=reported,
            unavailable_providers=unavailable,
        )

    async def _default_organization(self) -> str | None:
        """The configured organization, else the token owner's first one, looked up once.

        ``None`` if the user has none: then the server decides (early G1 builds need none).
        """
        if self._organization_id is None:
            organizations = (await self.whoami()).organization_ids
            self._organization_id = organizations[0] if organizations else ""
        return self._organization_id or None

    async def send_message(
        self,
        chat_id: ChatId,
        content: Sequence[InputPart],
        *,
        resume: bool = False,
        leave_plan_mode: bool = False,
    ) -> SendResult:
        """``POST /chats/{id}/messages``, made safe to retry: after a timeout or a 5xx it is sent
        again only if the chat shows it did not arrive (see ``_arrived``).

        ``resume`` sends ``busy_behavior: interrupt``: a chat in G2's ``requires_action`` would queue a
        plain message and go on waiting for a client tool's result (up to chatd's five minutes),
        while this cancels that call and lets the agent go on, the message queued next (chatstate
        SendMessage from A0/A1). For an idle chat both behaviours are the same; builds without the
        field ignore it.

        ``leave_plan_mode`` clears the chat's plan mode with the message (``plan_mode: ""``), as Coder's
        UI implements an approved plan (site AgentChatPage ``handleImplementPlan``).
        """
        body: dict[str, Any] = {"content": _content(content)}
        if resume:
            body["busy_behavior"] = "interrupt"
        if leave_plan_mode:
            body["plan_mode"] = ""
        arrived: list[SendResult] = []

        async def landed() -> bool:
            found = await self._arrived(chat_id, content)
            arrived[:] = [found] if found is not None else []
            return found is not None

        try:
            response = await self._rest.call(
                "send_message",
                "POST",
                self.api.path(chat_id, "messages"),
                idempotent=False,
                json_body=body,
                landed=landed,
            )
        except CoderUnavailable as exc:
            if not arrived:
                raise
            log.info("a send to chat %s failed (%s) but arrived", chat_id, exc, extra={"chat_id": chat_id})
            return arrived[0]
        return decode(read_json(response), parse_send_result, "message response")

    async def _arrived(self, chat_id: ChatId, content: Sequence[InputPart]) -> SendResult | None:
        """The message a failed send delivered after all: the newest queued message, else the newest
        user message, when its text is the sent text.

        Coder takes no idempotency key, so this is the best check there is: a person who sends the
        very same text twice in a row, the second time into a timeout that Coder never saw, has
        that second copy taken as delivered. A duplicate for everyone else is the worse error.
        """
        text = "".join(p.text for p in content if p.type == "text")
        response = await self._rest.call(
            "recent_messages",
            "GET",
            self.api.path(chat_id, "messages"),
            idempotent=True,
            params={"limit": 20},
        )
        messages, queue = decode(read_json(response), parse_message_page, "message list")
        if queue and queue[-1].text == text:
            return SendResult(queued=True, queued_message=queue[-1])
        users = [m for m in messages if m.role == "user"]
        if users and max(users, key=lambda m: m.id).text == text:
            return SendResult(queued=False, message=max(users, key=lambda m: m.id))
        return None

    async def submit_tool_results(self, chat_id: ChatId, results: Sequence[ToolResult]) -> None:
        """``POST /chats/{id}/tool-results`` (codersdk ``SubmitToolResults``, 204): the results of the
        client tool calls the chat waits on. Not retried: a second submission after a lost answer is
        a 409 (the chat no longer waits), which would read as a refusal of the first."""
        body = {"results": [r.model_dump() for r in results]}
        await self._rest.call(
            "submit_tool_results",
            "POST",
            self.api.path(chat_id, "tool-results"),
            idempotent=False,
            json_body=body,
        )

    async def get_chat(self, chat_id: ChatId) -> Chat:
        """``GET /chats/{id}``."""
        response = await self._rest.call("get_chat", "GET", self.api.path(chat_id), idempotent=True)
        return decode(read_json(response), self.api.parse_chat, "chat")

    async def list_chats(self, *, labels: Mapping[str, str] | None = None) -> list[Chat]:
        """``GET /chats`` filtered by ``label=key:value`` (all must match), server-side and again
        here: early experimental builds ignore the filter and list every chat of the token owner,
        and a chat taken for another thread's would attach the wrong thread to it."""
        params = {"label": [f"{key}:{value}" for key, value in labels.items()]} if labels else None
        response = await self._rest.call("list_chats", "GET", self.api.base, idempotent=True, params=params)
        chats = decode(
            read_json(response), lambda raw: [self.api.parse_chat(chat) for chat in raw], "chat list"
        )
        wanted = (labels or {}).items()
        kept = [chat for chat in chats if wanted <= chat.labels.items()]
        if len(kept) < len(chats):
            log.info("Coder listed %d chat(s) without the labels asked for", len(chats) - len(kept))
        return kept

    async def recent_messages(self, chat_id: ChatId, *, limit: int = 50) -> list[Message]:
        """``GET /chats/{id}/messages``, which answers newest first; returned sorted oldest first."""
        limit = min(max(limit, 1), _MAX_PAGE)
        response = await self._rest.call(
            "recent_messages",
            "GET",
            self.api.path(chat_id, "messages"),
            idempotent=True,
            params={"limit": limit},
        )
        messages = decode(
            read_json(response), lambda raw: [parse_message(m) for m in raw["messages"] or ()], "message list"
        )
        return sorted(messages, key=lambda message: message.id)

    async def interrupt(self, chat_id: ChatId) -> Chat:
        """``POST /chats/{id}/interrupt``; retried, as interrupting twice is harmless."""
        response = await self._rest.call(
            "interrupt", "POST", self.api.path(chat_id, "interrupt"), idempotent=True
        )
        return decode(read_json(response), self.api.parse_chat, "chat")

    async def promote_queued(self, chat_id: ChatId, queued_id: int) -> Message | None:
        """``POST /chats/{id}/queue/{queued}/promote``: the queued message becomes the next one.

        Older builds answer 200 with the promoted message; the newest answer 202 (coderd
        ``promoteChatQueuedMessage``: "Queued message promotion accepted.") and the message comes
        on the stream, so this returns ``None``. Not retried: a repeat after a lost answer would
        find the message no longer queued.
        """
        response = await self._rest.call(
            "promote_queued",
            "POST",
            self.api.path(chat_id, "queue", str(queued_id), "promote"),
            idempotent=False,
        )
        promoted = decode(read_json(response), parse_promoted, "promote answer")
        self._promote_accepted = "no" if promoted is not None else "yes"
        return promoted

    async def edit_message(
        self, chat_id: ChatId, message_id: int, content: Sequence[InputPart]
    ) -> EditResult:
        """``PATCH /chats/{id}/messages/{message}``; later builds wrap the answer as ``{"message"}``
        with the removed message ids and warnings.

        Not retried: a repeat after a lost answer would find the edited message already replaced.
        """
        response = await self._rest.call(
            "edit_message",
            "PATCH",
            self.api.path(chat_id, "messages", str(message_id)),
            idempotent=False,
            json_body={"content": _content(content)},
        )
        return decode(read_json(response), parse_edit_result, "edit answer")

    async def queued_messages(self, chat_id: ChatId) -> list[QueuedMessage]:
        """The queue, which ``GET /chats/{id}/messages`` returns on its first page."""
        response = await self._rest.call(
            "queued_messages",
            "GET",
            self.api.path(chat_id, "messages"),
            idempotent=True,
            params={"limit": 1},
        )
        return decode(
            read_json(response),
            lambda raw: [parse_queued(q) for q in raw.get("queued_messages") or ()],
            "message list",
        )

    async def delete_queued(self, chat_id: ChatId, queued_id: int) -> None:
        """``DELETE /chats/{id}/queue/{queued}`` (204); retried, as deleting twice is harmless."""
        await self._rest.call(
            "delete_queued", "DELETE", self.api.path(chat_id, "queue", str(queued_id)), idempotent=True
        )

    async def set_archived(self, chat_id: ChatId, archived: bool) -> None:
        """``PATCH /chats/{id}`` with ``archived``; succeeds if the chat already is in that state.

        The earliest G1 builds had no PATCH route but ``POST /archive`` and ``/unarchive``; a 404
        or 405 from PATCH falls back to those once a GET shows the chat itself exists.
        """
        try:
            await self._patch_archived(chat_id, archived)
            return
        except CoderRejected as exc:
            if exc.status not in (404, 405):
                raise
        await self.get_chat(chat_id)
        action = "archive" if archived else "unarchive"
        try:
            await self._rest.call("set_archived", "POST", self.api.path(chat_id, action), idempotent=True)
        except CoderRejected as exc:
            if not _already_in_state(exc):
                raise

    async def rename(self, chat_id: ChatId, title: str) -> Chat:
        """``PATCH /chats/{id}`` with ``title``, then the chat as Coder has it (PATCH answers 204).

        A build that takes titles trims it, refuses an empty one or one over 200 characters (400)
        and one while a title is being generated (409), and announces it as ``title_change``; a
        build that ignores it, or has no PATCH at all (404/405), leaves the chat as it was.
        """
        try:
            await self._rest.call(
                "rename", "PATCH", self.api.path(chat_id), idempotent=True, json_body={"title": title}
            )
        except CoderRejected as exc:
            if exc.status not in (404, 405):
                raise
        return await self.get_chat(chat_id)  # a chat that is really gone raises CoderNotFound here

    async def _patch_archived(self, chat_id: ChatId, archived: bool) -> None:
        """The PATCH itself; a chat already in that state (Coder's 400) counts as done."""
        try:
            await self._rest.call(
                "set_archived",
                "PATCH",
                self.api.path(chat_id),
                idempotent=True,
                json_body={"archived": archived},
            )
        except CoderRejected as exc:
            if not _already_in_state(exc):
                raise

    async def upload_file(self, organization_id: str, data: bytes, media_type: str, filename: str) -> str:
        """``POST /chats/files?organization=…`` with the raw bytes; Coder sniffs and checks the type."""
        response = await self._rest.call(
            "upload_file",
            "POST",
            f"{self.api.base}/files",
            idempotent=False,
            params={"organization": organization_id},
            content=data,
            headers={"Content-Type": media_type, "Content-Disposition": _content_disposition(filename)},
        )
        return decode(read_json(response), lambda raw: str(raw["id"]), "upload response")

    async def read_file(self, file_id: str) -> bytes:
        """``GET /chats/files/{id}``: a chat file's bytes (one the person uploaded, or one a tool of the
        agent stored, such as a proposed plan)."""
        response = await self._rest.call(
            "read_file", "GET", f"{self.api.base}/files/{file_id}", idempotent=True
        )
        return response.content

    async def get_diff(self, chat_id: ChatId) -> ChatDiff:
        """``GET /chats/{id}/diff``: the chat's branch, PR link and changed files."""
        response = await self._rest.call("get_diff", "GET", self.api.path(chat_id, "diff"), idempotent=True)
        return decode(read_json(response), parse_diff, "chat diff")

    async def download_file(self, file_id: str) -> tuple[bytes, str]:
        """``GET /chats/files/{id}``: the raw bytes, typed as Coder stored them (at most its 10 MiB
        chat-file cap: ``codersdk.MaxChatFileSizeBytes``)."""
        response = await self._rest.call(
            "download_file", "GET", f"{self.api.base}/files/{quote(file_id, safe='')}", idempotent=True
        )
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        return response.content, media_type or "application/octet-stream"

    def file_url(self, file_id: str) -> str:
        """The download route itself: Coder's session cookie lets a signed-in browser open it."""
        return f"{self.base_url}{self.api.base}/files/{quote(file_id, safe='')}"

    async def chat_cost(self, chat_id: ChatId) -> ChatCost | None:
        """G1 has no per-chat cost route (its ``/chats/cost/*`` routes are administrators' reports)."""
        return None

    def watch(self) -> ChatWatch:
        """``GET /chats/watch``: every change to the token owner's chats, across reconnects."""
        return open_watch(
            self.base_url,
            f"{self.api.base}/watch",
            self._token,
            parse_event=self.api.parse_watch_event,
            policy=self._reconnect,
            observer=self._observer,
            ssl_context=self._ssl_context,
        )

    def stream(self, chat_id: ChatId, *, after_id: int | None = None) -> ReconnectingStream[StreamEvent]:
        """The chat's WebSocket stream, resuming after ``after_id`` and after each reconnect."""
        return ReconnectingStream(
            chat_id=chat_id,
            url_for=partial(self._stream_url, chat_id),
            token=self._token,
            parse_event=self.api.parse_stream_event,
            after_id=after_id,
            policy=self._reconnect,
            observer=self._observer,
            ssl_context=self._ssl_context,
        )

    def _stream_url(self, chat_id: str, after_id: int | None) -> str:
        params = {} if after_id is None else {"after_id": after_id}
        return websocket_url(self.base_url, self.api.path(chat_id, "stream"), params)

    async def aclose(self) -> None:
        """Close the HTTP connection pool; streams are closed by whoever opened them."""
        await self._rest.aclose()
