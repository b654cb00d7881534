"""Coder Chats API simulator: Coder's Chats REST and WebSocket API on loopback.

It speaks the wire format of ``shared/reference/coder-chats-api.md`` (paths, status codes, error
bodies, omitted keys, stream framing), so the bridge's Coder client is exercised against the real
shapes rather than a mock of our own reading of them.

``generation`` picks the API: "experimental" (G1, ``/api/experimental/chats``), "v2" (G2, the
promoted API of Coder 2.38+ under ``/api/v2/chats`` only) or "v2.37" (G2 mounted under both
prefixes, the one-release compatibility window) or "v2-late" (G2 as the newest source behaves,
reference section 0a: promote answers 202, MCP servers are listed per organization and some are
disabled, a provider without a key makes its models unusable, send and edit answers carry
``messages``, ``warnings`` and ``deleted_message_ids``). G2 always uses bare framing, requires
``organization_id``, has the statuses running/waiting/error/interrupting/requires_action (no
pending), lists models at ``/api/v2/organizations/{org}/chats/models`` and widens uploads.
"ai-sdk" is G0a, the 2025 "AI chat" API under ``/api/v2/chats`` (reference section 6): chats
without status, and POST /messages answering with the reply as a Vercel AI SDK data stream
(``stream_format`` "v1" lines or "sse") for one of the ``models`` keys, which
``GET /api/v2/deployment/llms`` lists; see ``coder_aisdk``.
For G1, ``framing`` picks the build being imitated: "envelope" (batched ``{"type":"data"}``
envelopes, the default), "envelope-single" (the earliest handler: one envelope per event) or "bare"
(later builds: bare arrays, ``organization_id`` required on create, ``busy_behavior`` on send, edit
answers wrapped in ``{"message": ...}``).

Tests and benchmarks observe and steer it through ``chats``, ``requests``, ``frame_log``,
``wait_for`` and the fault knobs (``fail_next``, ``latency``, ``set_unavailable``, ``drop_streams``,
``revoke_token``, ``rewrite_message``, ``replay_parts``, ``inject``, ``ignore_label_filters`` for the
early builds whose chat list ignored them, ``warnings`` for late builds' create, send and edit answers, and
``flakiness`` for seeded 5xx and slow answers on a fraction of calls).
"v2-late" also streams as the newest chatd stream loop does: ``preview_reset`` after every persisted
message, every new model attempt (a script's ``Retry`` restarts it) and every connect's snapshot;
numbered parts (``history_version``, ``generation_attempt``, ``seq``); ``history_reset`` with the whole
history once an edit deleted messages (on every connect from then on); revisions; and after a
reconnect only the current step's parts.
Agent turns are scripted: see ``coder_agent`` and ``scenarios``. In G2 a script's ``ClientToolCall``
parks a turn in ``requires_action`` until ``POST /chats/{id}/tool-results`` answers it or chatd's
cancellations do (an interrupt, a ``busy_behavior: interrupt`` message, a promoted queued message, or
``action_timeout`` seconds of silence, chatd's five minutes by default).

    async with CoderSim(generation="v2") as sim:
        client = httpx.AsyncClient(base_url=sim.url, headers={"Coder-Session-Token": "sim-token"})
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType, TracebackType
from typing import Any, Final

from aiohttp import WSCloseCode, WSMsgType, web

from bridge.sim.coder_agent import Script
from bridge.sim.coder_aisdk import (
    DEFAULT_MODELS,
    NEW_CHAT_TITLE,
    STREAM_HEADERS,
    DataStreamOutput,
    StreamFormat,
    parse_chat_message,
    prompt_of,
    title_from,
)
from bridge.sim.coder_aisdk import chat_json as ai_sdk_chat_json
from bridge.sim.coder_catalog import Catalog
from bridge.sim.coder_engine import ACTION_TIMEOUT, ChatEngine, Subscriber
from bridge.sim.coder_rules import (
    ApiError,
    canonical_uuid,
    check_upload,
    derive_title,
    not_found,
    optional,
    optional_uuid,
    parse_after_id,
    parse_archived_query,
    parse_body,
    parse_content,
    parse_label_filter,
    parse_labels,
    parse_list_page,
    parse_mcp_server_ids,
    parse_message_id,
    parse_message_window,
    parse_plan_mode,
    parse_queued_id,
    parse_tool_results,
    parse_uuid_param,
    upload_name,
)
from bridge.sim.coder_state import (
    DIALECTS,
    G1_BASE,
    G1_MCP_SERVERS,
    G2_MCP_SERVERS,
    G2_MODELS,
    MODELS_RESPONSE,
    NIL_UUID,
    PING_FRAME,
    PROMOTE_ACCEPTED,
    Framing,
    Generation,
    JsonDict,
    SimChat,
    SimFile,
    SimUser,
    chat_json,
    cost_json,
    encode,
    messages_page_json,
    part,
    stream_frames,
    timestamp,
    user_json,
    watch_frame,
)
from bridge.sim.scenarios import CANNED, fix_login_bug

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DEFAULT_TOKENS: Final[Mapping[str, str]] = MappingProxyType({"sim-token": "alice"})
_PUBLIC_PATHS: Final = frozenset({"/api/v2/buildinfo"})
_STREAM_BATCH: Final = 256  # chatStreamBatchSize
_MAX_BODY: Final = 64 << 20  # above the 10 MiB upload cap, so the cap answers 413 with Coder's body
_CLOSE_TIMEOUT: Final = 2.0
_USER: Final = web.RequestKey("user", SimUser)
_SIGNED_OUT: Final = "You are signed out or your session has expired. Please sign in again to continue."


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as received (WebSocket upgrades included); ``query`` keeps repeated keys."""

    method: str
    path: str
    query: dict[str, list[str]]
    json: Any
    token: str | None


@dataclass(eq=False)
class _Fault:
    method: str
    path: re.Pattern[str]
    status: int
    message: str
    remaining: int
    after: bool = False
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Flakiness:
    """Random trouble on a fraction of requests: answers held up, and Coder's own 500s.

    Only requests whose path matches ``paths`` (re.search) are touched: those whose method is in
    ``slow_methods`` may be held up, those in ``error_methods`` may fail. A failed request is refused
    before the handler runs, as chatd's "Chat processor is unavailable." is, so it had no effect.
    ``rng`` is seeded by the caller so a run can be replayed.
    """

    error_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 0.0
    error_methods: frozenset[str] = frozenset({"GET"})
    slow_methods: frozenset[str] = frozenset({"GET", "POST", "PATCH"})
    paths: re.Pattern[str] = re.compile(r"/chats")
    rng: random.Random = field(default_factory=random.Random)
    errors: int = 0
    """How many requests were answered 500 by this knob."""
    slowed: int = 0
    """How many requests were held up by this knob."""

    def slows(self, method: str, path: str) -> bool:
        """Whether to hold up this request (counted)."""
        if method not in self.slow_methods or self.paths.search(path) is None:
            return False
        if self.rng.random() >= self.slow_rate:
            return False
        self.slowed += 1
        return True

    def fails(self, method: str, path: str) -> bool:
        """Whether to answer this request 500 (counted)."""
        if method not in self.error_methods or self.paths.search(path) is None:
            return False
        if self.rng.random() >= self.error_rate:
            return False
        self.errors += 1
        return True


class CoderSim:
    """A Coder deployment with the ``agents`` experiment on, its users given by ``tokens``."""

    def __init__(
        self,
        *,
        tokens: Mapping[str, str] = DEFAULT_TOKENS,
        generation: Generation = "experimental",
        framing: Framing | None = None,
        part_interval: float = 0.01,
        start_delay: float = 0.0,
        heartbeat: float | None = 15.0,
        agent: Script = fix_login_bug,
        scripts: Mapping[str, Script] = CANNED,
        chunk_words: int = 1,
        stream_format: StreamFormat = "v1",
        models: Sequence[str] = DEFAULT_MODELS,
        action_timeout: float = ACTION_TIMEOUT,
    ) -> None:
        self.dialect = DIALECTS[generation]
        self.stream_format = stream_format
        self.models = tuple(models)
        if self.dialect.promoted and framing not in (None, "bare"):
            raise ValueError(f"Coder {generation} frames its sockets bare, not {framing!r}")
        self.framing: Framing = framing or ("bare" if self.dialect.promoted else "envelope")
        self.organization_id = str(uuid.uuid4())
        self.model_config_id = str(uuid.uuid4())
        self.catalog = (Catalog.late if self.dialect.late else Catalog.default)(self.model_config_id)
        self.users = {name: SimUser(str(uuid.uuid4()), name) for name in dict.fromkeys(tokens.values())}
        self.requests: list[RecordedRequest] = []
        self.frame_log: list[tuple[float, str, list[JsonDict]]] = []
        self.latency = 0.0
        self.flakiness: Flakiness | None = None
        self.ignore_label_filters = False
        """Answer the chat list unfiltered, as early experimental builds did with ``label=``."""
        self.warnings: list[str] = []
        """What late builds' send and edit answers warn of (e.g. an MCP server that is unavailable)."""
        self._tokens = dict(tokens)
        self._heartbeat = heartbeat
        self._engine = ChatEngine(
            agent=agent,
            scripts=scripts,
            part_interval=part_interval,
            start_delay=start_delay,
            chunk_words=chunk_words,
            dialect=self.dialect,
            action_timeout=action_timeout,
        )
        self._faults: list[_Fault] = []
        self._unavailable = False
        self._sockets: set[web.WebSocketResponse] = set()
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._started_at = timestamp()

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on 127.0.0.1 on a port the OS picks."""
        app = web.Application(middlewares=[self._middleware], client_max_size=_MAX_BODY)
        app.add_routes(self._routes())
        # G0a's reply lives in the request: a client that goes away cancels it (Go's request context).
        self._runner = web.AppRunner(
            app,
            access_log=None,
            shutdown_timeout=_CLOSE_TIMEOUT,
            handler_cancellation=self.dialect.ai_sdk,
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = self._runner.addresses[0][1]

    async def close(self) -> None:
        """Stop turns, close sockets with 1001 (going away), stop listening."""
        await self._engine.close()
        goodbye = b"Server shutting down"
        await asyncio.gather(
            *(ws.close(code=WSCloseCode.GOING_AWAY, message=goodbye) for ws in self._sockets)
        )
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> CoderSim:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    # -- observation and control ---------------------------------------------------------------

    @property
    def chats(self) -> dict[str, SimChat]:
        return self._engine.chats

    @property
    def files(self) -> dict[str, SimFile]:
        """Uploaded chat files by id."""
        return self._engine.files

    @property
    def agent(self) -> Script:
        """The script for prompts no ``scripts`` prefix claims; assignable at any time."""
        return self._engine.agent

    @agent.setter
    def agent(self, script: Script) -> None:
        self._engine.agent = script

    @property
    def action_timeout(self) -> float:
        """Seconds a ``requires_action`` chat waits for a client's tool result before chatd cancels the
        call (its five minutes); assignable at any time, counting for waits that begin afterwards."""
        return self._engine.action_timeout

    @action_timeout.setter
    def action_timeout(self, seconds: float) -> None:
        self._engine.action_timeout = seconds

    @property
    def scripts(self) -> dict[str, Script]:
        """Prompt prefix (case-insensitive) -> script; the first matching prefix wins."""
        return self._engine.scripts

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Return once ``predicate()`` holds; it is re-checked after every state change."""
        await self._engine.changes.wait_for(predicate, timeout)

    def active_streams(self, chat_id: str | None = None) -> int:
        return self._engine.active_streams(chat_id)

    def drop_streams(self, chat_id: str | None = None) -> int:
        """Cut stream sockets (all, or one chat's) without a close frame, like a lost connection;
        returns how many were cut."""
        return self._engine.drop_streams(chat_id)

    def silence_streams(self, chat_id: str | None = None, *, watches: bool = False) -> None:
        """Go silent on stream sockets (all, or one chat's; watch sockets too with ``watches``): no
        more frames or pings, client pings unanswered, TCP left open — a wedged server or proxy."""
        self._engine.silence_sockets(chat_id, watches=watches)

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int,
        message: str = "Simulated failure.",
        count: int = 1,
        *,
        after: bool = False,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        """Answer the next ``count`` requests whose method matches and path matches (re.search).

        With ``after`` the request is carried out first and only its answer replaced: a proxy's
        504 or a lost response, where the client cannot tell whether Coder acted. ``fields`` go into
        the error body next to ``message`` (``detail``, a newer build's ``kind``, a usage limit's
        ``resets_at`` …).
        """
        fault = _Fault(
            method.upper(), re.compile(path_regex), status, message, count, after, dict(fields or {})
        )
        self._faults.append(fault)

    def set_unavailable(self, flag: bool) -> None:
        """While set, every endpoint answers 500 "Chat processor is unavailable."."""
        self._unavailable = flag

    def add_token(self, token: str, username: str) -> SimUser:
        """Issue ``token`` for ``username`` (a new user if the name is new), like ``coder tokens create``."""
        user = self.users.get(username)
        if user is None:
            user = self.users[username] = SimUser(str(uuid.uuid4()), username)
        self._tokens[token] = username
        return user

    def revoke_token(self, token: str) -> None:
        """Delete a token: later requests with it get 401 "API key is invalid." (open sockets stay up,
        as coderd checks the key only when a request or WebSocket upgrade comes in)."""
        self._tokens.pop(token, None)

    def active_watches(self) -> int:
        return self._engine.active_watches()

    def drop_watches(self) -> None:
        """Cut every watch socket without a close frame; changes until a client reconnects reach nobody."""
        self._engine.drop_watches()

    def set_diff(
        self, chat_id: str, status: Mapping[str, Any], contents: Mapping[str, Any] | None = None
    ) -> None:
        """Give a chat a diff/PR status (and GET /diff contents) and announce ``diff_status_change``.

        ``status`` holds ChatDiffStatus keys (``url``, ``pull_request_state``, ``pull_request_title``,
        ``pull_request_draft``, ``additions``, ``deletions``, ``changed_files`` …); ``contents`` holds
        ChatDiffContents keys (``branch``, ``pull_request_url``, ``diff`` …).
        """
        self._engine.set_diff(self.chats[chat_id], status, contents or {})

    def set_title(self, chat_id: str, title: str) -> None:
        """Rename a chat the way Coder's title generation does, announced as ``title_change``."""
        self._engine.set_title(self.chats[chat_id], title)

    def create_elsewhere(
        self, username: str, text: str, *, labels: Mapping[str, str] | None = None
    ) -> SimChat:
        """A chat ``username`` starts outside Slack (Coder's web UI, its API, CI), with ``labels``: the
        same path as POST /chats, announced on the owner's watch as ``created``."""
        return self._engine.create_chat(
            self.users[username],
            [part("text", text=text)],
            title=derive_title(text),
            labels=dict(labels or {}),
            model_config_id=self.catalog.model_config(None),
            organization_id=self.organization_id,
            client_type="ui",
        )

    def send_from_ui(self, chat_id: str, text: str) -> None:
        """A message the chat's owner sends in Coder's web UI: the same path as POST /messages."""
        self._engine.send(self.chats[chat_id], [part("text", text=text)], interrupt=False)

    def rewrite_message(self, chat_id: str, message_id: int, text: str) -> None:
        """Rewrite a stored message's text in place, as chatd does when it bumps a message's revision:
        the stream sends the message again under its id (v2-late: a revision, with its preview reset)."""
        self._engine.rewrite_message(self.chats[chat_id], message_id, text)

    def inject(self, chat_id: str, events: Sequence[JsonDict]) -> None:
        """Send raw events to the chat's stream sockets, all in one batch: what a server (or proxy) with
        a bug, or a newer build, might send; for clients' tolerance of events they cannot read."""
        for event in events:
            self._engine.publish(self.chats[chat_id], event)

    def replay_parts(self, chat_id: str) -> None:
        """Deliver the current preview's parts once more, as a relay that reselected its episode sends
        them (a client must not show them twice)."""
        self._engine.replay_parts(self.chats[chat_id])

    # -- HTTP plumbing -------------------------------------------------------------------------

    def _routes(self) -> list[web.RouteDef]:
        """Every path served, in one table: the generation's chat routes under each of its bases."""
        routes = [
            web.get("/api/v2/buildinfo", self._buildinfo),
            web.get("/api/v2/users/me", self._me),
            web.get("/api/v2/experiments", self._experiments),
        ]
        if self.dialect.ai_sdk:
            # The 2025 web UI's model picker read the deployment's models here (site api.ts
            # getDeploymentLLMs); UNCERTAIN that every G0a build served it.
            routes.append(web.get("/api/v2/deployment/llms", self._ai_sdk_models))
            return routes + self._ai_sdk_routes(self.dialect.bases[0])
        for base in self.dialect.bases:
            routes += self._chat_routes(base)
        routes.append(web.get("/api/v2/workspaces", self._workspaces))
        if self.dialect.late:
            # coderd/chat_routes.go at 004053e8: MCP servers are organization-scoped; no user listing.
            routes.append(web.get(G2_MCP_SERVERS, self._org_mcp_servers))
        else:
            routes.append(web.get(G1_MCP_SERVERS, self._mcp_servers))
        if self.dialect.promoted:
            # PR #28632 (v2.37): the catalog moved to the organization and left the chats prefix.
            routes.append(web.get(G2_MODELS, self._org_models))
        else:
            routes.append(web.get(G1_BASE + "/models", self._models))
            routes.append(web.get(G1_BASE + "/model-configs", self._model_configs))
        return routes

    def _chat_routes(self, base: str) -> list[web.RouteDef]:
        chat = base + "/{chat}"
        # G2's client tools: the results a chat in requires_action waits for (codersdk SubmitToolResults).
        answers = web.post(chat + "/tool-results", self._submit_tool_results)
        return [
            *([answers] if self.dialect.promoted else []),
            web.get(base, self._list_chats),
            web.post(base, self._create_chat),
            web.get(base + "/watch", self._watch),
            web.post(base + "/files", self._upload_file),
            web.get(base + "/files/{file}", self._download_file),
            web.get(chat, self._get_chat),
            web.patch(chat, self._patch_chat),
            web.get(chat + "/messages", self._list_messages),
            web.post(chat + "/messages", self._send_message),
            web.patch(chat + "/messages/{message}", self._edit_message),
            web.post(chat + "/interrupt", self._interrupt),
            web.delete(chat + "/queue/{queued}", self._delete_queued),
            web.post(chat + "/queue/{queued}/promote", self._promote),
            *([web.get(chat + "/cost", self._cost)] if self.dialect.late else []),
            web.get(chat + "/diff", self._diff),
            web.post(chat + "/title/regenerate", self._regenerate_title),
            web.get(chat + "/stream", self._stream),
        ]

    def _ai_sdk_routes(self, base: str) -> list[web.RouteDef]:
        """G0a has these six routes only: no queue, status, interrupt, archive, socket or files."""
        chat = base + "/{chat}"
        return [
            web.get(base, self._ai_sdk_list_chats),
            web.post(base, self._ai_sdk_create_chat),
            web.get(chat, self._ai_sdk_get_chat),
            web.delete(chat, self._ai_sdk_delete_chat),
            web.get(chat + "/messages", self._ai_sdk_messages),
            web.post(chat + "/messages", self._ai_sdk_send),
        ]

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Record, delay, inject faults, authenticate; turn every ApiError into Coder's error body."""
        self._record(request, await request.read())
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        flaky = self.flakiness
        if flaky is not None and flaky.slows(request.method, request.path):
            await asyncio.sleep(flaky.slow_seconds)
        try:
            if flaky is not None and flaky.fails(request.method, request.path):
                raise _processor_unavailable()
            self._raise_injected_fault(request, after=False)
            _raise_if_unrouted(request)
            user = self._authenticate(request)
            if user is not None:
                request[_USER] = user
            response = await handler(request)
            self._raise_injected_fault(request, after=True)
            return response
        except ApiError as err:
            return _json(err.status, err.body)

    def _record(self, request: web.Request, raw: bytes) -> None:
        query = {key: request.query.getall(key) for key in request.query}
        self.requests.append(
            RecordedRequest(request.method, request.path, query, _json_or_none(raw), _token(request))
        )
        self._engine.changes.notify()

    def _raise_injected_fault(self, request: web.Request, *, after: bool) -> None:
        if self._unavailable and not after:
            raise _processor_unavailable()
        for fault in self._faults:
            if fault.after == after and fault.method == request.method and fault.path.search(request.path):
                fault.remaining -= 1
                if not fault.remaining:
                    self._faults.remove(fault)
                raise ApiError(fault.status, fault.message, fields=fault.fields)

    def _authenticate(self, request: web.Request) -> SimUser | None:
        if request.path in _PUBLIC_PATHS:
            return None
        token = _token(request)
        if not token:
            raise ApiError(
                401, _SIGNED_OUT, 'Cookie "coder_session_token" or query parameter must be provided.'
            )
        username = self._tokens.get(token)
        if username is None:
            raise ApiError(401, _SIGNED_OUT, "API key is invalid.")
        return self.users[username]

    def _chat(self, request: web.Request) -> SimChat:
        """The ``{chat}`` of the path; someone else's chat is as absent as an unknown one."""
        chat = self.chats.get(parse_uuid_param(request.match_info["chat"]))
        if chat is None or chat.owner_id != _user(request).id:
            raise not_found()
        return chat

    def _content(self, request: web.Request, body: JsonDict) -> tuple[list[JsonDict], str]:
        """The body's input parts as stored parts (plus title text); files resolve per caller."""
        media_type_of = functools.partial(self._engine.media_type_of, _user(request).id)
        parts, title = parse_content(body.get("content"), media_type_of)
        if self.dialect.late:  # codersdk.ChatMessageFile: the file's name, omitempty (not file_name)
            for stored in parts:
                name = self.files[stored["file_id"]].name if stored["type"] == "file" else ""
                if name:
                    stored["name"] = name
        return parts, title

    # -- deployment endpoints ------------------------------------------------------------------

    async def _buildinfo(self, request: web.Request) -> web.Response:
        return _json(
            200, {"version": self.dialect.version, "external_url": self.url, "dashboard_url": self.url}
        )

    async def _me(self, request: web.Request) -> web.Response:
        return _json(200, user_json(_user(request), self.organization_id, self._started_at))

    async def _experiments(self, request: web.Request) -> web.Response:
        return _json(200, list(self.dialect.experiments))

    # -- chats ---------------------------------------------------------------------------------

    async def _list_chats(self, request: web.Request) -> web.Response:
        archived = parse_archived_query(request.query.get("q", ""))
        wanted = parse_label_filter(request.query.getall("label", []))
        if self.ignore_label_filters:
            wanted = {}
        limit, offset = parse_list_page(request.query)
        owner_id = _user(request).id
        chats = [
            c
            for c in self.chats.values()
            if c.owner_id == owner_id and c.archived == archived and wanted.items() <= c.labels.items()
        ]
        # Pinned chats first in pin order, then the most recently updated.
        chats.sort(key=lambda c: datetime.fromisoformat(c.updated_at), reverse=True)
        chats.sort(key=lambda c: (not c.pin_order, c.pin_order))
        page = chats[offset : offset + limit] if limit else chats[offset:]
        return _json(200, [self._chat_json(c) for c in page])

    async def _create_chat(self, request: web.Request) -> web.Response:
        user = _user(request)
        body = parse_body(await request.read())
        if self.framing == "bare":
            self._check_organization(body)
        content, title_source = self._content(request, body)
        model_config_id = self.catalog.model_config(optional_uuid(body, "model_config_id"))
        workspace_id = self.catalog.workspace(optional_uuid(body, "workspace_id"), user.id)
        mcp_server_ids = self.catalog.check_mcp_servers(parse_mcp_server_ids(body.get("mcp_server_ids")))
        labels = parse_labels(body.get("labels")) or {}
        chat = self._engine.create_chat(
            user,
            content,
            title=derive_title(title_source),
            labels=labels,
            model_config_id=model_config_id,
            workspace_id=workspace_id,
            mcp_server_ids=mcp_server_ids,
            organization_id=self.organization_id,
            # UNCERTAIN: what an omitted client_type defaults to; "api" suits a programmatic create.
            client_type=optional(body, "client_type", str) or "api",
        )
        if self.dialect.promoted:  # CreateChatRequest.PlanMode: "plan" starts the chat planning
            chat.plan_mode = parse_plan_mode(body) or ""
        created = self._chat_json(chat)
        if self.dialect.late:  # codersdk.Chat's warnings (omitempty): what Coder could not honour
            created.update(self._warnings())
        return _json(201, created)

    def _check_organization(self, body: JsonDict) -> None:
        organization_id = optional_uuid(body, "organization_id")
        if organization_id in (None, NIL_UUID):
            raise ApiError(400, "organization_id is required.")
        if organization_id != self.organization_id:
            raise ApiError(403, "You are not a member of the specified organization.")

    def _chat_json(self, chat: SimChat) -> JsonDict:
        return chat_json(chat, promoted=self.dialect.promoted)

    async def _get_chat(self, request: web.Request) -> web.Response:
        return _json(200, self._chat_json(self._chat(request)))

    async def _patch_chat(self, request: web.Request) -> web.Response:
        """Title (G2 only), then labels, archive and pin, as patchChat applies them.

        G1 reads ``title`` and ignores it, as coderd/exp_chats.go at 002434b9 does; G2 applies it
        first (``applyChatTitleUpdate``, which later G1 builds have too).
        """
        chat = self._chat(request)
        body = parse_body(await request.read())
        title = optional(body, "title", str)
        if title is not None and self.dialect.promoted:
            self._engine.rename(chat, title)
        labels = parse_labels(body.get("labels"))
        if labels is not None:
            self._engine.set_labels(chat, labels)
        archived = optional(body, "archived", bool)
        if archived is not None:
            self._engine.set_archived(chat, archived)
        pin_order = optional(body, "pin_order", int)
        if pin_order is not None:
            self._engine.pin(chat, pin_order)
        plan_mode = parse_plan_mode(body) if self.dialect.promoted else None
        if plan_mode is not None:  # UpdateChatRequest.PlanMode: "plan" enables, "" clears
            chat.plan_mode = plan_mode
        return web.Response(status=204)

    async def _interrupt(self, request: web.Request) -> web.Response:
        chat = self._chat(request)
        self._engine.interrupt(chat)
        return _json(200, self._chat_json(chat))

    async def _regenerate_title(self, request: web.Request) -> web.Response:
        chat = self._chat(request)
        self._engine.regenerate_title(chat)
        return _json(200, self._chat_json(chat))

    async def _diff(self, request: web.Request) -> web.Response:
        chat = self._chat(request)
        return _json(200, {"chat_id": chat.id, **chat.diff})

    async def _cost(self, request: web.Request) -> web.Response:
        """The newest source's ``GET /chats/{id}/cost`` (codersdk ``GetChatCost``)."""
        return _json(200, cost_json(self._chat(request)))

    async def _models(self, request: web.Request) -> web.Response:
        return _json(200, MODELS_RESPONSE)

    async def _org_models(self, request: web.Request) -> web.Response:
        """G2: the organization's model configs; another organization is as absent as an unknown one."""
        self._organization(request)
        return _json(200, self.catalog.g2_models_json(self.organization_id, self._started_at))

    def _organization(self, request: web.Request) -> None:
        """The path's organization must be the deployment's; another one is as absent as an unknown one."""
        if parse_uuid_param(request.match_info["organization"]) != self.organization_id:
            raise not_found()

    async def _model_configs(self, request: web.Request) -> web.Response:
        """G1: the enabled model configs, as a non-admin sees them (later G1 builds)."""
        return _json(200, self.catalog.g1_model_configs_json(self._started_at))

    async def _workspaces(self, request: web.Request) -> web.Response:
        """``GET /api/v2/workspaces``; only the ``owner:me`` search the bridge sends is understood."""
        if request.query.get("q", "").strip() != "owner:me":
            raise ApiError(400, "Invalid workspace search query.")
        return _json(
            200, self.catalog.workspaces_json(_user(request).id, self.organization_id, self._started_at)
        )

    async def _mcp_servers(self, request: web.Request) -> web.Response:
        return _json(200, self.catalog.mcp_servers_json(self._started_at))

    async def _org_mcp_servers(self, request: web.Request) -> web.Response:
        """The newest source's organization-scoped listing (codersdk/mcp.go ``MCPServerConfigs``)."""
        self._organization(request)
        return _json(200, self.catalog.org_mcp_servers_json(self.organization_id, self._started_at))

    # -- messages and queue --------------------------------------------------------------------

    async def _list_messages(self, request: web.Request) -> web.Response:
        chat = self._chat(request)
        before_id, limit, after_id = parse_message_window(request.query, with_after_id=self.dialect.promoted)
        return _json(200, messages_page_json(chat, before_id, limit, after_id))

    async def _send_message(self, request: web.Request) -> web.Response:
        chat = self._chat(request)
        body = parse_body(await request.read())
        content, _ = self._content(request, body)
        self.catalog.check_mcp_servers(parse_mcp_server_ids(body.get("mcp_server_ids")))
        interrupt = self._busy_behavior(body) == "interrupt"
        plan_mode = parse_plan_mode(body) if self.dialect.promoted else None
        if plan_mode is not None:  # CreateChatMessageRequest.PlanMode switches it with the message
            chat.plan_mode = plan_mode
        answer = self._engine.send(chat, content, interrupt=interrupt)
        if self.dialect.late:  # CreateChatMessageResponse: every inserted message, and the warnings
            if "message" in answer:
                answer["messages"] = [answer["message"]]
            answer.update(self._warnings())
        return _json(200, answer)

    def _warnings(self) -> JsonDict:
        """``warnings`` is omitempty."""
        return {"warnings": list(self.warnings)} if self.warnings else {}

    def _busy_behavior(self, body: JsonDict) -> str:
        """Envelope-era builds always queue; bare builds take ``busy_behavior``."""
        if self.framing != "bare":
            return "queue"
        behavior = optional(body, "busy_behavior", str) or "queue"
        if behavior not in ("queue", "interrupt"):
            raise ApiError(400, "Invalid busy_behavior value.", 'Must be "queue" or "interrupt".')
        return behavior

    async def _edit_message(self, request: web.Request) -> web.Response:
        chat = self._chat(request)
        message_id = parse_message_id(request.match_info["message"])
        body = parse_body(await request.read())
        content, _ = self._content(request, body)
        removed = [m["id"] for m in chat.messages if m["id"] >= message_id]
        message = self._engine.edit(chat, message_id, content)
        if not self.dialect.late:
            return _json(200, {"message": message} if self.framing == "bare" else message)
        # EditChatMessageResponse: the ids of the visible messages the edit removed (the edited one
        # among them: it is replaced under a new id), and the warnings; both omitempty.
        answer: JsonDict = {"message": message, "messages": [message]}
        if removed:
            answer["deleted_message_ids"] = removed
        return _json(200, {**answer, **self._warnings()})

    async def _delete_queued(self, request: web.Request) -> web.Response:
        chat = self._chat(request)
        self._engine.delete_queued(chat, parse_queued_id(request.match_info["queued"]))
        return web.Response(status=204)

    async def _promote(self, request: web.Request) -> web.Response:
        """Older builds answer the promoted message; the newest source 202 with a ``Response``
        (coderd ``promoteChatQueuedMessage``), the message coming on the stream."""
        chat = self._chat(request)
        message = self._engine.promote(chat, parse_queued_id(request.match_info["queued"]))
        if self.dialect.late:
            return _json(202, {"message": PROMOTE_ACCEPTED})
        return _json(200, message)

    async def _submit_tool_results(self, request: web.Request) -> web.Response:
        """204 once stored (coder/coder TestSubmitToolResultsRequiresActionSucceeds)."""
        chat = self._chat(request)
        body = parse_body(await request.read())
        self._engine.submit_tool_results(chat, parse_tool_results(body))
        return web.Response(status=204)

    # -- files ---------------------------------------------------------------------------------

    async def _upload_file(self, request: web.Request) -> web.Response:
        organization = request.query.get("organization", "")
        if not organization:
            raise ApiError(400, "Missing organization query parameter.")
        if canonical_uuid(organization) is None:
            raise ApiError(400, "Invalid organization ID.")
        data = await request.read()
        media_type = check_upload(request.headers.get("Content-Type", ""), data, self.dialect.upload_types)
        name = upload_name(request.headers.get("Content-Disposition", ""))
        file = SimFile(str(uuid.uuid4()), _user(request).id, name, media_type, data)
        self._engine.files[file.id] = file
        return _json(201, {"id": file.id})

    async def _download_file(self, request: web.Request) -> web.Response:
        file_id = canonical_uuid(request.match_info["file"])
        if file_id is None:
            raise ApiError(400, "Invalid file ID.")
        file = self._engine.files.get(file_id)
        if file is None or file.owner_id != _user(request).id:
            raise not_found()
        disposition = f'inline; filename="{file.name}"' if file.name else "inline"
        headers = {
            "Content-Disposition": disposition,
            "Cache-Control": "private, max-age=31536000, immutable",
        }
        return web.Response(body=file.data, content_type=file.media_type, headers=headers)

    # -- G0a: the 2025 AI-SDK chat API ---------------------------------------------------------

    async def _ai_sdk_list_chats(self, request: web.Request) -> web.Response:
        """GetChatsByOwnerID, newest first (the G0a query orders by created_at DESC)."""
        owner_id = _user(request).id
        chats = [c for c in self.chats.values() if c.owner_id == owner_id]
        chats.sort(key=lambda c: datetime.fromisoformat(c.created_at), reverse=True)
        return _json(200, [ai_sdk_chat_json(c) for c in chats])

    async def _ai_sdk_models(self, request: web.Request) -> web.Response:
        """codersdk.LanguageModelConfig: ``{"models": [{"id", "display_name", "provider"}]}``."""
        models = [{"id": m, "display_name": m, "provider": "anthropic"} for m in self.models]
        return _json(200, {"models": models})

    async def _ai_sdk_create_chat(self, request: web.Request) -> web.Response:
        """postChats reads no body."""
        return _json(201, ai_sdk_chat_json(self._engine.open_chat(_user(request), NEW_CHAT_TITLE)))

    async def _ai_sdk_get_chat(self, request: web.Request) -> web.Response:
        return _json(200, ai_sdk_chat_json(self._chat(request)))

    async def _ai_sdk_delete_chat(self, request: web.Request) -> web.Response:
        """codersdk.DeleteChat expects 204. UNCERTAIN: the stored coderd/chat.go has no handler for
        it (only a DeleteChat query), so some builds may answer 405/404."""
        self._engine.delete_chat(self._chat(request))
        return web.Response(status=204)

    async def _ai_sdk_messages(self, request: web.Request) -> web.Response:
        """chatMessages: every stored aisdk.Message, oldest first, no paging."""
        return _json(200, self._chat(request).messages)

    async def _ai_sdk_send(self, request: web.Request) -> web.StreamResponse:
        """postChatMessages: decode, check the model, title a first message, then stream the reply.

        The user message is stored once the headers are out; each step's assistant message is stored
        after that step was written, so a client that leaves mid-step (the bridge's way to
        interrupt) cancels the reply and keeps only the steps it fully received, as in coderd.
        """
        chat = self._chat(request)
        _, message = parse_chat_message(await request.read(), self.models)
        if not chat.messages:
            self._engine.retitle(chat, title_from(message))
        response = web.StreamResponse(status=200, headers=STREAM_HEADERS[self.stream_format])
        await response.prepare(request)
        self._engine.keep(chat, message)
        output = DataStreamOutput(self.stream_format)
        reply = self._engine.reply(chat, prompt_of(message), output, _aborter(request))
        try:
            while (item := await output.items.get()) is not None:
                if isinstance(item, str):
                    await response.write(item.encode())
                elif chat.id in self.chats:
                    self._engine.keep(chat, item)
        except ConnectionResetError:  # the client left between two writes
            return response
        finally:
            reply.cancel()
        await response.write_eof()
        return response

    # -- WebSockets ----------------------------------------------------------------------------

    async def _stream(self, request: web.Request) -> web.WebSocketResponse:
        """One chat's events: the snapshot in batches of 256, then live batches (reference 4)."""
        chat = self._chat(request)
        after_id = parse_after_id(request.query.get("after_id", ""))
        ws = await self._accept(request)
        subscriber, snapshot = self._engine.subscribe_stream(chat, after_id, _aborter(request))
        try:
            await self._serve(ws, subscriber, self._write_stream(ws, subscriber, snapshot))
        finally:
            self._engine.unsubscribe_stream(chat, subscriber)
        return ws

    async def _watch(self, request: web.Request) -> web.WebSocketResponse:
        """The caller's chat-list events, one per frame; envelope builds greet with one ping (4.8)."""
        ws = await self._accept(request)
        subscriber = self._engine.subscribe_watch(_user(request).id, _aborter(request))
        try:
            await self._serve(ws, subscriber, self._write_watch(ws, subscriber))
        finally:
            self._engine.unsubscribe_watch(subscriber)
        return ws

    async def _accept(self, request: web.Request) -> web.WebSocketResponse:
        # Pings and pongs are handled here, not by aiohttp, so that a socket can go silent.
        ws = web.WebSocketResponse(autoping=False, compress=False, timeout=_CLOSE_TIMEOUT)
        await ws.prepare(request)
        self._sockets.add(ws)
        return ws

    async def _serve(
        self, ws: web.WebSocketResponse, subscriber: Subscriber, writer: Coroutine[Any, Any, None]
    ) -> None:
        """Write and ping from two tasks, read (pings, pongs, close, forbidden frames) in this one."""
        pong = asyncio.Event()
        writing = asyncio.create_task(writer)
        pinging = asyncio.create_task(self._keepalive(ws, subscriber, pong))
        try:
            await self._read_until_closed(ws, subscriber, pong)
        finally:
            subscriber.close()
            pinging.cancel()
            await asyncio.gather(writing, pinging, return_exceptions=True)
            self._sockets.discard(ws)

    async def _keepalive(
        self, ws: web.WebSocketResponse, subscriber: Subscriber, pong: asyncio.Event
    ) -> None:
        """httpapi.Heartbeat: a control ping every ``heartbeat`` s; one not answered within the next
        interval closes the socket (1001 "Ping failed", reference 4.1). A silent socket stops it."""
        if self._heartbeat is None:
            return
        while not ws.closed:
            await asyncio.sleep(self._heartbeat)
            if subscriber.silent or ws.closed:
                return
            pong.clear()
            try:
                await ws.ping()
                await asyncio.wait_for(pong.wait(), self._heartbeat)
            except (TimeoutError, ConnectionResetError):
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"Ping failed")
                return

    async def _read_until_closed(
        self, ws: web.WebSocketResponse, subscriber: Subscriber, pong: asyncio.Event
    ) -> None:
        """The sockets are one-way: a client data frame closes them (reference 4.1)."""
        async for message in ws:
            if subscriber.silent:
                continue
            if message.type is WSMsgType.PING:
                await ws.pong(message.data)
            elif message.type is WSMsgType.PONG:
                pong.set()
            elif message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                if self.framing == "bare":
                    # UNCERTAIN (reference 7.15): the library's CloseRead code, believed 1008.
                    await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"unexpected data message")
                else:
                    reason = b"Clients cannot send messages for one-way WebSockets"
                    await ws.close(code=WSCloseCode.PROTOCOL_ERROR, message=reason)
                return

    async def _write_stream(
        self, ws: web.WebSocketResponse, subscriber: Subscriber, snapshot: list[JsonDict]
    ) -> None:
        for start in range(0, len(snapshot), _STREAM_BATCH):
            if not await self._send_batch(ws, subscriber, snapshot[start : start + _STREAM_BATCH]):
                return
        while (batch := await _next_batch(subscriber)) is not None:
            if not await self._send_batch(ws, subscriber, batch):
                return

    async def _send_batch(
        self, ws: web.WebSocketResponse, subscriber: Subscriber, batch: list[JsonDict]
    ) -> bool:
        """Write one batch as this build frames it; False once the connection is gone or silent."""
        chat_id = subscriber.key
        for text, events in stream_frames(self.framing, batch):
            if subscriber.silent or not await _send(ws, text):
                return False
            self.frame_log.append((time.monotonic(), chat_id, events))
            self._engine.changes.notify()
        return True

    async def _write_watch(self, ws: web.WebSocketResponse, subscriber: Subscriber) -> None:
        if self.framing != "bare" and not await _send(ws, PING_FRAME):
            return
        while (event := await subscriber.events.get()) is not None:
            if subscriber.silent or not await _send(ws, watch_frame(self.framing, event)):
                return


async def _next_batch(subscriber: Subscriber) -> list[JsonDict] | None:
    """The next event plus whatever else is already waiting (at most 256); None once closed."""
    first = await subscriber.events.get()
    if first is None:
        return None
    batch = [first]
    while len(batch) < _STREAM_BATCH and not subscriber.events.empty():
        event = subscriber.events.get_nowait()
        if event is None:
            subscriber.close()  # put the end marker back for the next call
            break
        batch.append(event)
    return batch


async def _send(ws: web.WebSocketResponse, text: str) -> bool:
    if ws.closed:
        return False
    try:
        await ws.send_str(text)
    except ConnectionResetError:
        return False
    return True


def _processor_unavailable() -> ApiError:
    """chatd's 500 when its processor is down (reference 2): refused before anything happened."""
    return ApiError(500, "Chat processor is unavailable.", "Chat processor is not configured.")


def _raise_if_unrouted(request: web.Request) -> None:
    """Unknown paths get Coder JSON too, before auth, so a generation probe reads a plain 404."""
    unmatched = request.match_info.http_exception
    if unmatched is not None:
        # UNCERTAIN: coderd's chi fallbacks; unknown API routes answer "Route not found.".
        raise ApiError(unmatched.status, "Route not found." if unmatched.status == 404 else unmatched.reason)


def _aborter(request: web.Request) -> Callable[[], None]:
    """Cuts the TCP connection without a close frame: what a client sees on a network drop."""
    transport = request.transport
    return transport.abort if transport is not None else lambda: None


def _user(request: web.Request) -> SimUser:
    return request[_USER]


def _token(request: web.Request) -> str | None:
    """The session token, looked up like coderd: cookie, then Coder-Session-Token, then Bearer."""
    bearer = request.headers.get("Authorization", "")
    return (
        request.cookies.get("coder_session_token")
        or request.headers.get("Coder-Session-Token")
        or (bearer[7:].strip() if bearer[:7].lower() == "bearer " else None)
        or None
    )


def _json(status: int, body: Any) -> web.Response:
    """Like httpapi.Write: Go-escaped JSON plus the encoder's trailing newline."""
    return web.Response(
        status=status, text=encode(body) + "\n", content_type="application/json", charset="utf-8"
    )


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None
