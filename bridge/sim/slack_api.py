"""The simulated Web API methods: argument rules, errors and responses as reference section 4 gives them.

``WebApi.call`` is the whole request pipeline after HTTP parsing: method lookup, token check, injected
faults, rate limits, scopes, then the method itself. Errors are HTTP 200 with ``{"ok": false}``, rate
limits HTTP 429 with ``Retry-After``, exactly as Slack answers, because the bridge's error handling is
tested against these answers and nothing else.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import re
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from bridge.sim.slack_events import EventFactory
from bridge.sim.slack_limits import RateLimiter, format_retry_after
from bridge.sim.slack_oauth import Grant, SlackOAuth
from bridge.sim.slack_state import (
    APP_ID,
    BOT_ID,
    BOT_NAME,
    BOT_USER_ID,
    MAX_MODAL_TITLE,
    SCOPE_FAMILY,
    TRIGGER_LIFETIME,
    AgentSession,
    Ephemeral,
    JsonDict,
    PendingUpload,
    SimChannel,
    SimMessage,
    Workspace,
)
from bridge.sim.slack_tables import tables_error

MAX_TEXT = 40_000
MAX_MARKDOWN_TEXT = 12_000
MAX_BLOCKS = 50
MAX_HOME_BLOCKS = 100
MAX_SESSION_TITLE = 200
MAX_ACTIONS = 25  # elements of an actions block
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_ACTION_ID = 255
SESSION_STATUSES = frozenset({"processing", "active", "suspended", "closed"})
TASK_STATUSES = frozenset({"pending", "in_progress", "complete", "error"})
CHUNK_TYPES = frozenset({"markdown_text", "task_update", "plan_update", "blocks"})
TASK_DISPLAY_MODES = frozenset({"timeline", "plan"})
_EMOJI_NAME = re.compile(r"^[a-z0-9_+'\-]+(::skin-tone-[2-6])?$")

TokenKind = Literal["bot", "app"]
# An echo hook: the app's own action produced this event in this conversation.
EchoHook = Callable[[JsonDict, SimChannel], None]


class ApiError(Exception):
    """A Slack error answer: ``error`` plus extra top-level fields (``needed``, ``provided``, ...)."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


def _missing(name: str) -> ApiError:
    return ApiError(
        "invalid_arguments", response_metadata={"messages": [f"[ERROR] missing required field: {name}"]}
    )


@dataclass
class ApiResult:
    """The HTTP answer to one Web API call."""

    status: int
    body: JsonDict
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Slack's verdict in the body."""
        return bool(self.body.get("ok"))

    @property
    def error(self) -> str | None:
        """The error code of a failed call."""
        error = self.body.get("error")
        return error if isinstance(error, str) else None


@dataclass
class Fault:
    """An injected failure for the next call(s) of one method (``SlackSim.fail_next``)."""

    error: str
    status: int
    retry_after: float | None
    remaining: int
    applied: bool = False
    """The call takes effect all the same: only its answer is the error (lost on the way back)."""


@dataclass
class Storm:
    """A 429 storm (``SlackSim.storm``): a fraction of the calls of some methods are rate limited.

    Slack's real budgets are per method and per workspace, so a busy workspace sees 429s no matter
    how well this app paces itself; each carries ``Retry-After`` like a real one. ``rng`` is seeded
    by the caller so a run can be replayed.
    """

    methods: frozenset[str]
    rate: float
    retry_after: float
    rng: random.Random = field(default_factory=random.Random)
    answered: int = 0
    """How many calls this storm answered with 429."""

    def strikes(self, method: str) -> bool:
        """Whether this call is one of the unlucky ones (counted)."""
        if method not in self.methods or self.rng.random() >= self.rate:
            return False
        self.answered += 1
        return True


class Args:
    """A call's merged arguments (query string, form body, JSON body) with Slack's loose typing, and
    the installation whose token made the call (``team``: None for an org-wide install)."""

    def __init__(self, values: JsonDict, team: str | None = None) -> None:
        self.values = values
        self.team = team

    def get(self, name: str) -> str | None:
        """A non-empty string argument (numbers are accepted as form posts send them as text)."""
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        return value if isinstance(value, str) else str(value)

    def require(self, name: str) -> str:
        """A required string argument; missing means ``invalid_arguments``."""
        value = self.get(name)
        if value is None:
            raise _missing(name)
        return value

    def decoded(self, name: str, error: str) -> Any:
        """An argument that form posts carry as a JSON string and JSON posts as a value."""
        value = self.values.get(name)
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError as exc:
                raise ApiError(error) from exc
        return value

    def flag(self, name: str) -> bool:
        """A boolean argument: ``true``/``1`` in forms, ``true`` in JSON."""
        value = self.values.get(name)
        if isinstance(value, str):
            return value.lower() in ("1", "true")
        return bool(value)


@dataclass(frozen=True)
class _Content:
    text: str | None
    blocks: list[JsonDict] | None
    markdown_text: str | None


Handler = Callable[[Args], Awaitable[JsonDict]]
ScopeRule = Callable[[Args], str | None]


@dataclass(frozen=True)
class _Method:
    handler: Handler
    scope: ScopeRule
    token: TokenKind = "bot"


class WebApi:
    """Every simulated Web API method over one workspace."""

    def __init__(
        self,
        workspace: Workspace,
        events: EventFactory,
        *,
        bot_token: str,
        app_token: str,
        scopes: Iterable[str],
        limiter: RateLimiter,
        time_scale: float,
        agent_declared: bool,
        home_tab_enabled: bool,
        subscriptions: frozenset[str],
        echo: EchoHook,
        open_socket: Callable[[], str],
    ) -> None:
        self._ws = workspace
        self._events = events
        self._tokens: dict[str, TokenKind] = {bot_token: "bot", app_token: "app"}
        self.grants: dict[str, str | None] = {bot_token: workspace.team_id}
        """Each bot token's installation: the workspace it acts in, None for an org-wide install
        (acting in every workspace of the org)."""
        self.scopes = tuple(scopes)
        self.limiter = limiter
        self.rate_limits_enabled = True
        self.agent_declared = agent_declared
        self.home_tab_enabled = home_tab_enabled
        self.unknown_methods: set[str] = set()
        self.chunk_types: set[str] = set(CHUNK_TYPES)
        self._time_scale = time_scale
        self._subscriptions = subscriptions
        self._echo = echo
        self._open_socket = open_socket
        self.oauth = SlackOAuth(workspace=workspace)
        """The install flow; the tokens it issued are bot tokens of their own teams."""
        self.faults: dict[str, deque[Fault]] = {}
        self.held: dict[str, asyncio.Event] = {}
        """Methods whose answers wait for their event (``SlackSim.hold_answer``), once carried out."""
        self.storm: Storm | None = None
        self._methods: dict[str, _Method] = {
            "auth.test": _Method(self._auth_test, _no_scope),
            "apps.connections.open": _Method(self._apps_connections_open, _no_scope, token="app"),
            "chat.postMessage": _Method(self._chat_post_message, _scope("chat:write")),
            "chat.update": _Method(self._chat_update, _scope("chat:write")),
            "chat.delete": _Method(self._chat_delete, _scope("chat:write")),
            "chat.postEphemeral": _Method(self._chat_post_ephemeral, _scope("chat:write")),
            "chat.getPermalink": _Method(self._chat_get_permalink, _no_scope),
            "chat.startStream": _Method(self._chat_start_stream, _scope("chat:write")),
            "chat.appendStream": _Method(self._chat_append_stream, _scope("chat:write")),
            "chat.stopStream": _Method(self._chat_stop_stream, _scope("chat:write")),
            "reactions.add": _Method(self._reactions_add, _scope("reactions:write")),
            "reactions.remove": _Method(self._reactions_remove, _scope("reactions:write")),
            "conversations.replies": _Method(self._conversations_replies, self._family_scope("history")),
            "conversations.history": _Method(self._conversations_history, self._family_scope("history")),
            "conversations.info": _Method(self._conversations_info, self._family_scope("read")),
            "users.info": _Method(self._users_info, _scope("users:read")),
            "files.info": _Method(self._files_info, _scope("files:read")),
            "files.getUploadURLExternal": _Method(self._files_get_upload_url, _scope("files:write")),
            "files.completeUploadExternal": _Method(self._files_complete_upload, _scope("files:write")),
            "views.publish": _Method(self._views_publish, _no_scope),
            "views.open": _Method(self._views_open, _no_scope),
            "usergroups.users.list": _Method(self._usergroups_users_list, _scope("usergroups:read")),
            "assistant.threads.setStatus": _Method(self._assistant_set_status, self._status_scope),
            "agents.sessions.setStatus": _Method(self._sessions_set_status, _scope("chat:write")),
            "agents.sessions.rename": _Method(self._sessions_rename, _scope("chat:write")),
        }

    def token_kind(self, token: str | None) -> TokenKind | None:
        """Which of the simulator's tokens this is, if any."""
        return self._tokens.get(token) if token is not None else None

    def grant(self, token: str, team: str | None) -> None:
        """Make ``token`` a bot token installed in workspace ``team`` (None: org-wide)."""
        self._tokens[token] = "bot"
        self.grants[token] = team

    def installation_of(self, token: str | None) -> str:
        """Whose installation a token is: its workspace, or its org for an org-wide install ("" for
        any other token); a token the OAuth flow issued too, expired or revoked since."""
        if token is None:
            return ""
        if token in self.grants:
            return self.grants[token] or self._ws.enterprise_id or ""
        grant = self.oauth.issued(token)
        return (grant.team_id or grant.enterprise_id or "") if grant is not None else ""

    def _workspace_refusal(self, token: str, args: Args) -> str | None:
        """Slack's answer when a bot token names a conversation of a workspace it is not installed
        in: the conversation does not exist for it."""
        channel = self._ws.channels.get(args.get("channel") or args.get("channel_id") or "")
        if channel is None or args.team is None or channel.team == args.team:
            return None
        return "channel_not_found"

    def _budget_team(self, args: Args) -> str:
        """The workspace whose rate limits a call counts against: its conversation's, else the
        token's (Slack counts per workspace, an org-wide token in each workspace it acts in)."""
        channel = self._ws.channels.get(args.get("channel") or args.get("channel_id") or "")
        return channel.team if channel is not None else args.team or self._ws.team_id

    async def call(self, method: str, params: JsonDict, token: str | None) -> ApiResult:
        """Run one call through Slack's checks in Slack's order and produce its HTTP answer."""
        spec = self._methods.get(method)
        if spec is None or method in self.unknown_methods:
            return _error("unknown_method")
        if token is None:
            return _error("not_authed")
        kind = self.token_kind(token)
        grant: Grant | None = None
        if kind is None:
            checked = self.oauth.check(token)
            if isinstance(checked, str):
                return _error(checked)
            grant, kind = checked, "bot"
        scopes = grant.scopes if grant is not None else self.scopes
        headers = {"x-oauth-scopes": ",".join(scopes)} if kind == "bot" else {}
        if kind != spec.token:
            # Reference 1.2: a bot token on apps.connections.open is "not_authed".
            return _error("not_authed" if spec.token == "app" else "not_allowed_token_type", headers)
        args = Args(params, grant.team_id if grant is not None else self.grants.get(token))
        refusal = self._workspace_refusal(token, args) if kind == "bot" else None
        if refusal is not None:
            return _error(refusal, headers)
        fault = self._take_fault(method)
        if fault is not None and fault.applied:
            with contextlib.suppress(ApiError):  # done, and its answer lost on the way back
                await spec.handler(args)
        if fault is not None:
            if fault.retry_after is not None:
                headers["Retry-After"] = format_retry_after(fault.retry_after, time_scale=self._time_scale)
            return ApiResult(fault.status, {"ok": False, "error": fault.error}, headers)
        if self.storm is not None and self.storm.strikes(method):
            headers["Retry-After"] = format_retry_after(self.storm.retry_after, time_scale=self._time_scale)
            return ApiResult(429, {"ok": False, "error": "ratelimited"}, headers)
        if self.rate_limits_enabled:
            wait = self.limiter.admit(
                method, args.get("channel") or args.get("channel_id"), team=self._budget_team(args)
            )
            if wait > 0:
                headers["Retry-After"] = format_retry_after(wait, time_scale=self._time_scale)
                return ApiResult(429, {"ok": False, "error": "ratelimited"}, headers)
        needed = spec.scope(args)
        if needed is not None and needed not in scopes:
            return _error("missing_scope", headers, needed=needed, provided=",".join(scopes))
        if needed is not None:
            headers["x-accepted-oauth-scopes"] = needed
        try:
            if grant is not None and method == "auth.test":
                body = grant.auth_test(self._ws.domain)
            else:
                body = await spec.handler(args)
        except ApiError as exc:
            return _error(exc.error, headers, **exc.extra)
        held = self.held.get(method)
        if held is not None:
            await held.wait()
        return ApiResult(200, {"ok": True, **body}, headers)

    def _take_fault(self, method: str) -> Fault | None:
        queue = self.faults.get(method)
        if not queue:
            return None
        fault = queue[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            queue.popleft()
        return fault

    # --- scopes -------------------------------------------------------------------------------

    def _family_scope(self, suffix: str) -> ScopeRule:
        """conversations.* need the scope of the conversation's kind: channels:, groups:, im:, mpim:."""

        def rule(args: Args) -> str:
            channel = self._ws.channels.get(args.get("channel") or "")
            return f"{SCOPE_FAMILY[channel.kind if channel else 'public']}:{suffix}"

        return rule

    def _status_scope(self, args: Args) -> str | None:
        """assistant.threads.setStatus takes chat:write or, legacy, assistant:write (reference 4.12)."""
        return None if "assistant:write" in self.scopes else "chat:write"

    # --- conversation access ------------------------------------------------------------------

    def _visible_channel(self, channel_id: str | None) -> SimChannel:
        """A conversation the bot may see: any public channel, other kinds only as a member."""
        channel = self._ws.channels.get(channel_id or "")
        if channel is None or (channel.kind != "public" and not self._ws.is_member(channel)):
            raise ApiError("channel_not_found")
        return channel

    def _member_channel(self, channel_id: str | None) -> SimChannel:
        """A conversation the bot belongs to; a public one it hasn't joined is ``not_in_channel``."""
        channel = self._visible_channel(channel_id)
        if not self._ws.is_member(channel):
            raise ApiError("not_in_channel")
        return channel

    def _writable_channel(self, args: Args, name: str = "channel") -> SimChannel:
        """Where the bot may post: a user id means the bot's DM with that user (reference 4.1)."""
        channel_id = args.get(name)
        if channel_id and channel_id[0] in "UW" and channel_id in self._ws.users:
            channel = self._ws.add_im(channel_id)
        else:
            channel = self._visible_channel(channel_id)
            if not self._ws.is_member(channel) and "chat:write.public" not in self.scopes:
                raise ApiError("not_in_channel")
        if channel.is_archived:
            raise ApiError("is_archived")
        return channel

    def _own_message(self, channel: SimChannel, ts: str, *, error: str) -> SimMessage:
        """A live message of the bot; someone else's is ``error`` (cant_update_message, ...)."""
        message = self._ws.message(channel.id, ts)
        if message is None or message.deleted:
            raise ApiError("message_not_found")
        if not self._ws.is_own(message):
            raise ApiError(error)
        return message

    def _thread_root(self, channel: SimChannel, thread_ts: str | None) -> str | None:
        """The root ts to reply under; a reply's ts is normalised to its root, an unknown one refused.

        Refusing an unknown ``thread_ts`` is stricter than Slack (which may accept it silently) on
        purpose: replying to a thread that doesn't exist is always a bug in the caller.
        """
        if thread_ts is None:
            return None
        root = self._ws.message(channel.id, thread_ts)
        if root is None or root.deleted:
            raise ApiError("thread_not_found")
        return root.thread_ts if root.is_reply else root.ts

    # --- content rules --------------------------------------------------------------------------

    @staticmethod
    def _content(args: Args) -> _Content:
        """text / blocks / markdown_text with Slack's exclusivity and length rules (reference 4.1)."""
        text = args.get("text")
        markdown_text = args.get("markdown_text")
        blocks = args.decoded("blocks", "invalid_blocks_format")
        attachments = args.decoded("attachments", "invalid_attachments")
        if markdown_text is not None and (text is not None or blocks is not None):
            raise ApiError("markdown_text_conflict")
        if blocks is not None:
            if not isinstance(blocks, list) or not all(isinstance(b, dict) and "type" in b for b in blocks):
                raise ApiError("invalid_blocks_format")
            if len(blocks) > MAX_BLOCKS or not all(_valid_block(b) for b in blocks):
                raise ApiError("invalid_blocks")
            table_error = tables_error(blocks)
            if table_error is not None:
                raise ApiError("invalid_blocks", response_metadata={"messages": [table_error]})
            if (
                sum(len(str(b.get("text", ""))) for b in blocks if b["type"] == "markdown")
                > MAX_MARKDOWN_TEXT
            ):
                raise ApiError("msg_blocks_too_long")  # the markdown blocks' cumulative limit (4.14)
        if text is None and not blocks and markdown_text is None and not attachments:
            raise ApiError("no_text")
        if (text is not None and len(text) > MAX_TEXT) or (
            markdown_text is not None and len(markdown_text) > MAX_MARKDOWN_TEXT
        ):
            raise ApiError("msg_too_long")
        return _Content(text, blocks, markdown_text)

    def _chunks(self, args: Args) -> list[JsonDict]:
        """Validate streaming ``chunks`` (reference 4.13); anything unrecognised is ``invalid_chunks``,
        as is a kind this workspace does not know (``chunk_types``)."""
        chunks = args.decoded("chunks", "invalid_chunks")
        if chunks is None:
            return []
        if not isinstance(chunks, list):
            raise ApiError("invalid_chunks")
        for chunk in chunks:
            kind = chunk.get("type") if isinstance(chunk, dict) else None
            valid = kind in self.chunk_types and (
                (kind == "markdown_text" and isinstance(chunk.get("text"), str))
                or (
                    kind == "task_update"
                    and chunk.get("id")
                    and isinstance(chunk.get("title"), str)
                    and chunk.get("status") in TASK_STATUSES
                )
                or (kind == "plan_update" and isinstance(chunk.get("title"), str))
                or (kind == "blocks" and isinstance(chunk.get("blocks"), list))
            )
            if not valid:
                raise ApiError("invalid_chunks")
        return chunks

    @staticmethod
    def _apply_stream(message: SimMessage, markdown_text: str | None, chunks: list[JsonDict]) -> None:
        """Grow a streamed message: text is appended; task/plan updates replace their earlier state."""
        if markdown_text is not None:
            if len(markdown_text) > MAX_MARKDOWN_TEXT:
                raise ApiError("msg_too_long")
            message.markdown_text = (message.markdown_text or "") + markdown_text
        for chunk in chunks:
            kind = chunk["type"]
            if kind == "markdown_text":
                message.markdown_text = (message.markdown_text or "") + chunk["text"]
            elif kind == "blocks":
                message.blocks.extend(chunk["blocks"])
            else:
                message.chunks = [
                    c
                    for c in message.chunks
                    if not (c["type"] == kind and (kind == "plan_update" or c.get("id") == chunk.get("id")))
                ]
                message.chunks.append(chunk)

    # --- methods ----------------------------------------------------------------------------------

    async def _auth_test(self, args: Args) -> JsonDict:
        org = self._ws.enterprise_id
        grid = {} if org is None else {"enterprise_id": org}
        if args.team is None:  # an org-wide install: no one workspace (reference 10.2)
            return grid | {
                "url": f"https://{self._ws.domain}-org.enterprise.slack.com/",
                "team": "Example Org",
                "user": BOT_NAME,
                "team_id": None,
                "user_id": BOT_USER_ID,
                "bot_id": BOT_ID,
                "is_enterprise_install": True,
            }
        return grid | {
            "url": f"https://{self._ws.domain}.slack.com/",
            "team": self._ws.teams.get(args.team, self._ws.team_name),
            "user": BOT_NAME,
            "team_id": args.team,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    async def _apps_connections_open(self, args: Args) -> JsonDict:
        return {"url": self._open_socket()}

    async def _chat_post_message(self, args: Args) -> JsonDict:
        channel = self._writable_channel(args)
        content = self._content(args)
        thread_ts = self._thread_root(channel, args.get("thread_ts"))
        metadata = args.decoded("metadata", "invalid_metadata_format")
        message = self._ws.store(
            SimMessage(
                channel=channel.id,
                ts=self._ws.clock.next(),
                text=content.text or "",
                user=self._ws.bot_of(channel.team)[0],
                bot_id=self._ws.bot_of(channel.team)[1],
                blocks=content.blocks or [],
                markdown_text=content.markdown_text,
                thread_ts=thread_ts,
                subtype="thread_broadcast" if thread_ts and args.flag("reply_broadcast") else None,
                metadata=metadata if isinstance(metadata, dict) else None,
            )
        )
        if thread_ts is not None:
            # An assistant status clears when the app replies in the thread (reference 4.12).
            self._ws.assistant_status.pop((channel.id, thread_ts), None)
        self._echo(self._events.message(message, channel), channel)
        return {"channel": channel.id, "ts": message.ts, "message": self._ws.message_json(message)}

    async def _chat_update(self, args: Args) -> JsonDict:
        channel = self._writable_channel(args)
        message = self._own_message(channel, args.require("ts"), error="cant_update_message")
        content = self._content(args)
        previous = self._ws.message_json(message)
        message.chunks = []  # a streamed message's tasks and plan are content too: replaced
        if content.markdown_text is not None:
            message.markdown_text, message.text, message.blocks = content.markdown_text, "", []
        else:
            message.markdown_text = None
            if content.text is not None:
                message.text = content.text
            if content.blocks is not None:
                message.blocks = content.blocks
        message.edited_ts, message.edited_by = self._ws.clock.next(), self._ws.bot_of(channel.team)[0]
        self._echo(self._events.message_changed(message, channel, previous), channel)
        return {
            "channel": channel.id,
            "ts": message.ts,
            "text": message.visible_text,
            "message": self._ws.message_json(message),
        }

    async def _chat_delete(self, args: Args) -> JsonDict:
        channel = self._writable_channel(args)
        message = self._own_message(channel, args.require("ts"), error="cant_delete_message")
        previous = self._ws.message_json(message)
        message.deleted = True
        self._echo(self._events.message_deleted(message, channel, previous), channel)
        return {"channel": channel.id, "ts": message.ts}

    async def _chat_post_ephemeral(self, args: Args) -> JsonDict:
        channel = self._writable_channel(args)
        user = args.require("user")
        if not self._ws.is_member(channel, user):
            raise ApiError("user_not_in_channel")
        content = self._content(args)
        ephemeral = Ephemeral(
            channel=channel.id,
            user=user,
            ts=self._ws.clock.next(),
            text=content.text or "",
            blocks=content.blocks or [],
            markdown_text=content.markdown_text,
            thread_ts=args.get("thread_ts"),
        )
        self._ws.ephemerals.append(ephemeral)
        return {"message_ts": ephemeral.ts}

    async def _chat_get_permalink(self, args: Args) -> JsonDict:
        channel = self._visible_channel(args.get("channel"))
        message = self._ws.message(channel.id, args.require("message_ts"))
        if message is None or message.deleted:
            raise ApiError("message_not_found")
        link = f"https://{self._ws.domain}.slack.com/archives/{channel.id}/p{message.ts.replace('.', '')}"
        if message.is_reply:
            link += f"?thread_ts={message.thread_ts}&cid={channel.id}"
        return {"channel": channel.id, "permalink": link}

    async def _chat_start_stream(self, args: Args) -> JsonDict:
        channel = self._writable_channel(args)
        if channel.kind != "im" and not (args.get("recipient_user_id") and args.get("recipient_team_id")):
            # Streams into channels are addressed to one recipient (reference 4.13).
            raise ApiError("invalid_arguments", response_metadata={"messages": ["[ERROR] missing recipient"]})
        mode = args.get("task_display_mode")
        if mode is not None and mode not in TASK_DISPLAY_MODES:
            raise _enum_error("task_display_mode")
        chunks = self._chunks(args)
        thread_ts = self._thread_root(channel, args.get("thread_ts"))
        message = SimMessage(
            channel=channel.id,
            ts=self._ws.clock.next(),
            user=self._ws.bot_of(channel.team)[0],
            bot_id=self._ws.bot_of(channel.team)[1],
            markdown_text="",
            thread_ts=thread_ts,
            streaming=True,
        )
        self._apply_stream(message, args.get("markdown_text"), chunks)
        self._ws.store(message)
        if thread_ts is not None:
            self._ws.assistant_status.pop((channel.id, thread_ts), None)
        self._echo(self._events.message(message, channel), channel)
        return {"channel": channel.id, "ts": message.ts}

    def _streaming_message(self, args: Args) -> tuple[SimChannel, SimMessage]:
        channel = self._writable_channel(args)
        message = self._own_message(channel, args.require("ts"), error="cant_update_message")
        if not message.streaming:
            raise ApiError("message_not_in_streaming_state")
        return channel, message

    async def _chat_append_stream(self, args: Args) -> JsonDict:
        channel, message = self._streaming_message(args)
        markdown_text, chunks = args.get("markdown_text"), self._chunks(args)
        if markdown_text is None and not chunks:
            raise _missing("markdown_text")
        self._apply_stream(message, markdown_text, chunks)
        return {"channel": channel.id, "ts": message.ts}

    async def _chat_stop_stream(self, args: Args) -> JsonDict:
        channel, message = self._streaming_message(args)
        session_status = args.get("session_status")
        if session_status is not None and session_status not in SESSION_STATUSES:
            raise _enum_error("session_status")
        blocks = args.decoded("blocks", "invalid_blocks_format")
        if blocks is not None and (not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS):
            raise ApiError("invalid_blocks")
        previous = self._ws.message_json(message)
        self._apply_stream(message, args.get("markdown_text"), self._chunks(args))
        message.blocks.extend(blocks or [])
        metadata = args.decoded("metadata", "invalid_metadata_format")
        if isinstance(metadata, dict):
            message.metadata = metadata
        message.streaming = False
        session = self._ws.agent_sessions.get((channel.id, message.thread_ts))
        if session is not None:
            # The session leaves "processing" with the stream; "active" when not told otherwise (12.2).
            _set_session_status(session, session_status or "active")
        self._echo(self._events.message_changed(message, channel, previous), channel)
        return {"channel": channel.id, "ts": message.ts, "message": self._ws.message_json(message)}

    async def _reactions_add(self, args: Args) -> JsonDict:
        channel, message, name = self._reaction_target(args)
        bot = self._ws.bot_of(channel.team)[0]
        users = message.reactions.setdefault(name, [])
        if bot in users:
            raise ApiError("already_reacted")
        users.append(bot)
        self._echo(self._events.reaction("reaction_added", bot, message, name), channel)
        return {}

    async def _reactions_remove(self, args: Args) -> JsonDict:
        channel, message, name = self._reaction_target(args)
        bot = self._ws.bot_of(channel.team)[0]
        users = message.reactions.get(name, [])
        if bot not in users:
            raise ApiError("no_reaction")
        users.remove(bot)
        if not users:
            del message.reactions[name]
        self._echo(self._events.reaction("reaction_removed", bot, message, name), channel)
        return {}

    def _reaction_target(self, args: Args) -> tuple[SimChannel, SimMessage, str]:
        channel = self._member_channel(args.get("channel"))
        if channel.is_archived:
            raise ApiError("is_archived")
        ts = args.get("timestamp")
        if ts is None:
            raise ApiError("no_item_specified")
        name = (args.get("name") or "").strip(":")
        if not _EMOJI_NAME.match(name):
            raise ApiError("invalid_name")
        message = self._ws.message(channel.id, ts)
        if message is None or message.deleted:
            raise ApiError("message_not_found")
        return channel, message, name

    async def _conversations_replies(self, args: Args) -> JsonDict:
        channel = self._member_channel(args.get("channel"))
        ts = args.require("ts")
        found = self._ws.message(channel.id, ts)
        root = self._ws.message(channel.id, (found.thread_ts if found is not None else None) or ts)
        if root is None or root.deleted:
            raise ApiError("thread_not_found")
        messages = [m for m in self._ws.thread(channel.id, root.ts) if m is root or _in_range(m, args)]
        return self._page(messages, args, most=1000)

    async def _conversations_history(self, args: Args) -> JsonDict:
        """A conversation's top-level messages (a thread shows as its root), newest first."""
        channel = self._member_channel(args.get("channel"))
        messages = sorted(
            (
                m
                for m in self._ws.messages.get(channel.id, {}).values()
                if not m.deleted and not m.is_reply and _in_range(m, args)
            ),
            key=lambda m: m.ts,
            reverse=True,
        )
        return {**self._page(messages, args, most=999, default=100), "pin_count": 0}

    def _page(
        self, messages: list[SimMessage], args: Args, *, most: int, default: int | None = None
    ) -> JsonDict:
        """One page of ``messages`` at the request's cursor, as conversations.* answer it."""
        start = _decode_cursor(args.get("cursor"))
        try:
            limit = max(1, min(int(args.get("limit") or default or most), most))
        except ValueError as exc:
            raise ApiError("invalid_limit") from exc
        page = messages[start : start + limit]
        has_more = start + limit < len(messages)
        shown = [self._ws.message_json(m, thread_summary=True) for m in page]
        if not args.flag("include_all_metadata"):  # Slack leaves metadata out unless asked for it
            for message in shown:
                message.pop("metadata", None)
        return {
            "messages": shown,
            "has_more": has_more,
            "response_metadata": {"next_cursor": _encode_cursor(start + limit) if has_more else ""},
        }

    async def _conversations_info(self, args: Args) -> JsonDict:
        return {"channel": self._ws.channel_json(self._visible_channel(args.get("channel")))}

    async def _users_info(self, args: Args) -> JsonDict:
        user = self._ws.users.get(args.require("user"))
        if user is None:
            raise ApiError("user_not_found")
        return {"user": self._ws.user_json(user)}

    async def _files_info(self, args: Args) -> JsonDict:
        file = self._ws.files.get(args.require("file"))
        if file is None:
            raise ApiError("file_not_found")
        return {
            "file": self._ws.file_json(file),
            "comments": [],
            "response_metadata": {"next_cursor": ""},
        }

    async def _files_get_upload_url(self, args: Args) -> JsonDict:
        """Step one of an external upload (reference 3.5): a URL that takes the bytes, and the id the
        file will have. ``length`` is the size in bytes the upload must have."""
        filename = args.require("filename")
        length = args.get("length") or ""
        if not length.isdigit() or int(length) < 1:
            raise ApiError("invalid_arguments")
        file_id = self._ws.next_file_id()
        key = secrets.token_urlsafe(12)
        self._ws.uploads[key] = PendingUpload(file_id, filename, int(length), args.get("alt_txt") or "")
        return {"upload_url": f"{self._ws.base_url}/upload/v1/{key}", "file_id": file_id}

    async def _files_complete_upload(self, args: Args) -> JsonDict:
        """Step three: the uploaded files become files, shared in ``channel_id`` (a thread's with
        ``thread_ts``) by one message of the bot; without a channel they stay private to the app.
        A file whose bytes never came (or not as many as announced) is not found."""
        listed = args.decoded("files", "invalid_arguments")
        if not isinstance(listed, list) or not listed or not all(isinstance(f, dict) for f in listed):
            raise ApiError("invalid_arguments")
        uploads = {u.file_id: (key, u) for key, u in self._ws.uploads.items()}
        found = []
        for item in listed:
            key, upload = uploads.get(str(item.get("id", "")), ("", None))
            if upload is None or upload.content is None or len(upload.content) != upload.length:
                raise ApiError("file_not_found")
            found.append((key, upload, str(item.get("title") or upload.filename)))
        channel = self._writable_channel(args, "channel_id") if args.get("channel_id") else None
        thread_ts = self._thread_root(channel, args.get("thread_ts")) if channel is not None else None
        files = []
        for key, upload, title in found:
            del self._ws.uploads[key]
            file = self._ws.add_uploaded(upload, title=title, user=BOT_USER_ID)
            files.append(file)
        if channel is not None:
            message = self._ws.store(
                SimMessage(
                    channel=channel.id,
                    ts=self._ws.clock.next(),
                    text=args.get("initial_comment") or "",
                    user=self._ws.bot_of(channel.team)[0],
                    bot_id=self._ws.bot_of(channel.team)[1],
                    thread_ts=thread_ts,
                    files=[self._ws.file_json(f) for f in files],
                )
            )
            for file in files:
                share = {"ts": message.ts, **({"thread_ts": thread_ts} if thread_ts else {})}
                file.shares.setdefault(channel.id, []).append(share)
            message.files = [self._ws.file_json(f) for f in files]
            self._echo(self._events.message(message, channel), channel)
        return {"files": [{"id": f.id, "title": f.title} for f in files]}

    async def _views_publish(self, args: Args) -> JsonDict:
        if not self.home_tab_enabled:
            raise ApiError("not_enabled")
        user_id = args.require("user_id")
        if user_id not in self._ws.users:
            raise ApiError("user_not_found")
        view = args.decoded("view", "invalid_arguments")
        if not isinstance(view, dict) or view.get("type") != "home":
            raise ApiError(
                "invalid_arguments", response_metadata={"messages": ["[ERROR] view.type must be home"]}
            )
        blocks = view.get("blocks", [])
        if not isinstance(blocks, list) or len(blocks) > MAX_HOME_BLOCKS:
            raise ApiError("invalid_blocks")
        current = self._ws.home_views.get(user_id)
        expected_hash = args.get("hash")
        if current is not None and expected_hash is not None and expected_hash != current["hash"]:
            raise ApiError("hash_conflict")
        view_id = current["id"] if current else f"V0SIM{secrets.token_hex(4).upper()}"
        stored = {
            "id": view_id,
            "team_id": self._ws.team_id,
            "type": "home",
            "blocks": blocks,
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id", ""),
            "state": {"values": {}},
            "hash": f"{time.time():.6f}.{secrets.token_hex(4)}",
            "title": view.get("title"),
            "clear_on_close": False,
            "notify_on_close": False,
            "close": None,
            "submit": None,
            "previous_view_id": None,
            "root_view_id": view_id,
            "app_id": APP_ID,
            "app_installed_team_id": self._ws.team_id,
            "bot_id": BOT_ID,
        }
        self._ws.home_views[user_id] = stored
        return {"view": stored}

    async def _views_open(self, args: Args) -> JsonDict:
        """Open a modal for the user whose interaction produced ``trigger_id`` (valid once, for 3 s)."""
        trigger_id = args.get("trigger_id")
        if trigger_id is None:
            raise _missing("trigger_id")
        trigger = self._ws.triggers.get(trigger_id)
        if trigger is None:
            raise ApiError("invalid_trigger_id")
        if trigger.exchanged:
            raise ApiError("exchanged_trigger_id")
        if time.time() - trigger.issued_at > TRIGGER_LIFETIME:
            raise ApiError("expired_trigger_id")
        view = args.decoded("view", "invalid_arguments")
        if not isinstance(view, dict) or view.get("type") != "modal":
            raise ApiError(
                "invalid_arguments", response_metadata={"messages": ["[ERROR] view.type must be modal"]}
            )
        title = view.get("title")
        if not isinstance(title, dict) or not 0 < len(str(title.get("text", ""))) <= MAX_MODAL_TITLE:
            detail = (
                f"[ERROR] must be less than {MAX_MODAL_TITLE + 1} characters [json-pointer:/view/title/text]"
            )
            raise ApiError("invalid_arguments", response_metadata={"messages": [detail]})
        blocks = view.get("blocks", [])
        if not isinstance(blocks, list) or len(blocks) > MAX_HOME_BLOCKS:
            raise ApiError("invalid_blocks")
        if any(b.get("type") == "input" for b in blocks if isinstance(b, dict)) and "submit" not in view:
            detail = "[ERROR] submit is required when an input block is present [json-pointer:/view/submit]"
            raise ApiError("invalid_arguments", response_metadata={"messages": [detail]})
        trigger.exchanged = True
        stored = self.modal_view(view)
        self._ws.modals.setdefault(trigger.user, []).append(stored)
        return {"view": stored}

    def modal_view(self, view: JsonDict, view_id: str | None = None) -> JsonDict:
        """A modal as Slack stores and returns it (``views.open``, ``response_action: update``)."""
        view_id = view_id or f"V0SIM{secrets.token_hex(4).upper()}"
        return {
            "id": view_id,
            "team_id": self._ws.team_id,
            "type": "modal",
            "title": view.get("title"),
            "submit": view.get("submit"),
            "close": view.get("close"),
            "blocks": list(view.get("blocks", [])),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id", ""),
            "state": {"values": {}},
            "hash": f"{time.time():.6f}.{secrets.token_hex(4)}",
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "previous_view_id": None,
            "root_view_id": view_id,
            "app_id": APP_ID,
            "app_installed_team_id": self._ws.team_id,
            "bot_id": BOT_ID,
        }

    async def _usergroups_users_list(self, args: Args) -> JsonDict:
        group = self._ws.usergroups.get(args.require("usergroup"))
        if group is None or (not group.enabled and not args.flag("include_disabled")):
            raise ApiError("no_such_subteam")
        return {"users": list(group.users)}

    async def _assistant_set_status(self, args: Args) -> JsonDict:
        channel = self._member_channel(args.require("channel_id"))
        thread_ts = args.require("thread_ts")
        if "status" not in args.values:
            raise _missing("status")
        loading = args.decoded("loading_messages", "invalid_arguments")
        if loading is not None and (not isinstance(loading, list) or len(loading) > 10):
            raise ApiError("invalid_arguments")
        status = args.get("status")
        if status is None:
            self._ws.assistant_status.pop((channel.id, thread_ts), None)
        else:
            self._ws.assistant_status[(channel.id, thread_ts)] = status
        return {}

    def _session_channel(self, args: Args) -> SimChannel:
        if not self.agent_declared:
            # Only apps declared as agents may create sessions (reference 12.2).
            raise ApiError("not_authorized")
        return self._member_channel(args.require("channel_id"))

    async def _sessions_set_status(self, args: Args) -> JsonDict:
        channel = self._session_channel(args)
        status = args.get("status")
        if status not in SESSION_STATUSES:
            raise _enum_error("status")
        title = args.get("title")
        if title is not None and len(title) > MAX_SESSION_TITLE:
            raise ApiError("invalid_arguments")
        key = (channel.id, args.get("thread_ts"))
        session = self._ws.agent_sessions.get(key)
        if session is None:
            session = self._ws.agent_sessions[key] = AgentSession(
                channel_id=channel.id,
                thread_ts=key[1],
                status=status,
                title=title,
                initiator_user_id=args.get("initiator_user_id"),
            )
        _set_session_status(session, status)
        if status == "processing" and "agent_session_stopped" not in self._subscriptions:
            warning = "missing_agent_session_stopped_event_subscription"
            return {"warning": warning, "response_metadata": {"warnings": [warning]}}
        return {}

    async def _sessions_rename(self, args: Args) -> JsonDict:
        channel = self._session_channel(args)
        title = args.require("title")
        if len(title) > MAX_SESSION_TITLE:
            raise ApiError("invalid_arguments")
        key = (channel.id, args.get("thread_ts"))
        session = self._ws.agent_sessions.get(key)
        if session is None:
            session = self._ws.agent_sessions[key] = AgentSession(
                channel_id=channel.id, thread_ts=key[1], status="active", title=title, initiator_user_id=None
            )
        session.title = title
        return {}


def _valid_block(block: JsonDict) -> bool:
    """The Block Kit rules the bridge's blocks meet (4.14, 8.1): a markdown block's text is a string;
    an actions block has 1-25 buttons with unique action ids, a plain-text label and a value or url."""
    if block["type"] == "markdown":
        return isinstance(block.get("text"), str)
    if block["type"] != "actions":
        return True
    elements = block.get("elements")
    if not isinstance(elements, list) or not 0 < len(elements) <= MAX_ACTIONS:
        return False
    ids = [e.get("action_id") for e in elements if isinstance(e, dict)]
    return len(set(ids)) == len(elements) and all(_valid_button(e) for e in elements)


def _valid_button(element: JsonDict) -> bool:
    label = element.get("text")
    action_id, value, url = element.get("action_id"), element.get("value", ""), element.get("url")
    return (
        element.get("type") == "button"
        and isinstance(label, dict)
        and label.get("type") == "plain_text"
        and 0 < len(str(label.get("text", ""))) <= MAX_BUTTON_TEXT
        and isinstance(action_id, str)
        and 0 < len(action_id) <= MAX_ACTION_ID
        and isinstance(value, str)
        and len(value) <= MAX_BUTTON_VALUE
        and (url is None or isinstance(url, str))
        and element.get("style") in (None, "primary", "danger")
    )


def _scope(name: str) -> ScopeRule:
    return lambda args: name


def _no_scope(args: Args) -> None:
    return None


def _error(error: str, headers: dict[str, str] | None = None, **extra: Any) -> ApiResult:
    return ApiResult(200, {"ok": False, "error": error, **extra}, dict(headers or {}))


def _enum_error(name: str) -> ApiError:
    detail = f"[ERROR] must be a valid enum value [json-pointer:/{name}]"
    return ApiError("invalid_arguments", response_metadata={"messages": [detail]})


def _set_session_status(session: AgentSession, status: str) -> None:
    session.status = status
    session.history.append(status)


def _in_range(message: SimMessage, args: Args) -> bool:
    """Whether a message is within the request's ``oldest``/``latest`` bounds (``inclusive``)."""
    oldest, latest, inclusive = args.get("oldest"), args.get("latest"), args.flag("inclusive")
    return (oldest is None or message.ts > oldest or (inclusive and message.ts == oldest)) and (
        latest is None or message.ts < latest or (inclusive and message.ts == latest)
    )


def _encode_cursor(offset: int) -> str:
    return base64.b64encode(f"offset:{offset}".encode()).decode()


def _decode_cursor(cursor: str | None) -> int:
    if cursor is None:
        return 0
    try:
        kind, _, offset = base64.b64decode(cursor).decode().partition(":")
        if kind != "offset":
            raise ValueError(cursor)
        return int(offset)
    except ValueError as exc:
        raise ApiError("invalid_cursor") from exc
