"""A Slack workspace on loopback: Web API, file hosting, Events API / Socket Mode delivery, user actions.

``SlackSim`` is what tests, the offline demo and the benchmarks talk to instead of slack.com. It serves
the Web API at ``api_url`` (point ``AsyncWebClient(base_url=...)`` / ``SLACK_API_URL`` at it), keeps
the workspace state, enforces Slack's rate limits, records every call and delivery, and plays users:
``await sim.user_says(...)`` stores a message and delivers the events Slack would, over Socket Mode if
the app is connected, else by signed POST to ``event_url``. Tests wait on conditions
(``await sim.wait_for(...)``) that are re-checked on every state change, never on sleeps.

Deliberate deviations from Slack are listed where they occur; the main ones: ``Retry-After`` carries
decimals when ``time_scale != 1``; an unknown ``thread_ts`` is refused with ``thread_not_found``; file
downloads check token and scope but not channel visibility; event subscriptions are not tied to scopes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote

from aiohttp import web

from bridge.sim.sender import AckLoss, AppResponse, Delivery, EventDeliverer, SocketModeHub
from bridge.sim.slack_api import ApiResult, Fault, Storm, WebApi
from bridge.sim.slack_events import EventFactory, find_action, is_bot_mention
from bridge.sim.slack_limits import TIER_1, TIER_2, TIER_3, TIER_4, Limit, RateLimiter, RateLimits
from bridge.sim.slack_oauth import Grant, SlackOAuth
from bridge.sim.slack_state import (
    ALICE,
    ALICE_DM,
    APP_ID,
    BOB,
    BOT_ID,
    BOT_USER_ID,
    DEFAULT_SCOPES,
    GENERAL,
    MESSAGE_SUBSCRIPTION,
    RANDOM,
    TEAM_ID,
    AgentSession,
    ChannelKind,
    Compression,
    Ephemeral,
    JsonDict,
    SimChannel,
    SimMessage,
    SimUser,
    SimUserGroup,
    Trigger,
    Workspace,
    rich_text_blocks,
)

__all__ = [
    "TIER_1",
    "TIER_2",
    "TIER_3",
    "TIER_4",
    "AckLoss",
    "AgentSession",
    "ApiCall",
    "AppResponse",
    "Delivery",
    "Ephemeral",
    "FileRequest",
    "Grant",
    "Limit",
    "RateLimits",
    "ResponseUrlPost",
    "SimChannel",
    "SimMessage",
    "SimUser",
    "SimUserGroup",
    "SlackOAuth",
    "SlackSim",
    "Storm",
]

logger = logging.getLogger(__name__)

DEFAULT_SUBSCRIPTIONS = frozenset(
    {
        "app_mention",
        "message.channels",
        "message.groups",
        "message.im",
        "message.mpim",
        "reaction_added",
        "reaction_removed",
        "app_home_opened",
    }
)
RESPONSE_URL_MAX_USES = 5
_SIGN_IN_PAGE = (
    "<!DOCTYPE html><html><head><title>Sign in | Slack</title></head>"
    "<body><h1>Sign in to Example</h1><form action='/signin'></form></body></html>"
)


@dataclass(frozen=True)
class ApiCall:
    """One Web API request as the simulator received and answered it."""

    method: str
    params: JsonDict
    time: float
    status: int
    ok: bool
    error: str | None
    token: str | None = None
    """The token the call was made with (which workspace's bot, once several are installed)."""
    installation: str = ""
    """Whose bot token made the call: its workspace, or its org for an org-wide install."""


@dataclass(frozen=True)
class ResponseUrlPost:
    """One POST the app made to a ``response_url`` the simulator handed out."""

    url_id: str
    body: JsonDict
    time: float


@dataclass(frozen=True)
class FileRequest:
    """One request for a file's bytes, as the file host received it."""

    path: str
    accept_encoding: str
    """The request's ``Accept-Encoding`` ("" when it sent none)."""


@dataclass
class _ResponseTarget:
    """What a ``response_url`` answers for: the clicked message or the command's channel."""

    channel: str
    user: str
    message_ts: str | None
    uses: int = 0


class SlackSim:
    """The simulated Slack; see the module docstring. Use ``async with SlackSim() as sim``."""

    team_id = TEAM_ID
    bot_user_id = BOT_USER_ID
    bot_id = BOT_ID
    app_id = APP_ID
    alice = ALICE
    bob = BOB
    general = GENERAL
    random = RANDOM
    alice_dm = ALICE_DM

    def __init__(
        self,
        *,
        signing_secret: str = "sim-signing-secret",
        bot_token: str = "xoxb-sim-bot",
        app_token: str = "xapp-sim-app",
        time_scale: float = 1.0,
        rate_limits_enabled: bool = True,
        ack_timeout: float = 3.0,
        echo_bot_messages: bool = True,
        agent_declared: bool = True,
        home_tab_enabled: bool = True,
        scopes: Iterable[str] | None = None,
        subscriptions: Iterable[str] | None = None,
        enterprise_id: str | None = None,
        org_install: bool = False,
    ) -> None:
        """``enterprise_id``: the workspace is the first of an Enterprise Grid org (``add_team`` adds
        others); ``org_install``: ``bot_token`` is then an org-wide install's, acting in every one."""
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        if org_install and enterprise_id is None:
            raise ValueError("an org-wide install needs an org: pass enterprise_id")
        self.bot_token = bot_token
        self.app_token = app_token
        self.time_scale = time_scale
        self.echo_bot_messages = echo_bot_messages
        self.subscriptions = frozenset(DEFAULT_SUBSCRIPTIONS if subscriptions is None else subscriptions)
        self.latency = 0.0
        self.calls: list[ApiCall] = []
        self.ratelimited_count = 0
        self.response_url_posts: list[ResponseUrlPost] = []
        self.file_requests: list[FileRequest] = []
        self.upload_requests: list[str] = []
        """The upload URL keys that received bytes, in order (step two of each external upload)."""
        self.workspace = Workspace()
        self.workspace.enterprise_id = enterprise_id
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._response_targets: dict[str, _ResponseTarget] = {}
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._events = EventFactory(self.workspace, verification_token="sim-verification-token")
        self._hub = SocketModeHub(app_id=APP_ID, on_change=self._notify)
        self._deliverer = EventDeliverer(
            signing_secret=signing_secret,
            ack_timeout=ack_timeout,
            time_scale=time_scale,
            hub=self._hub,
            on_change=self._notify,
        )
        self._api = WebApi(
            self.workspace,
            self._events,
            bot_token=bot_token,
            app_token=app_token,
            scopes=DEFAULT_SCOPES if scopes is None else scopes,
            limiter=RateLimiter(RateLimits(), time_scale=time_scale),
            time_scale=time_scale,
            agent_declared=agent_declared,
            home_tab_enabled=home_tab_enabled,
            subscriptions=self.subscriptions,
            echo=self._echo,
            open_socket=self._hub.open_url,
        )
        self._api.rate_limits_enabled = rate_limits_enabled
        if org_install:
            self._api.grant(bot_token, None)
            self._events.org_install = True

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on 127.0.0.1, on a free port."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_get("/oauth/v2/authorize", self._handle_authorize)
        app.router.add_get("/files-pri/{key}/download/{name}", self._handle_file)
        app.router.add_get("/files-pri/{key}/{name}", self._handle_file)
        app.router.add_post("/upload/v1/{key}", self._handle_upload)
        app.router.add_get("/", self._handle_sign_in)
        app.router.add_get("/link/", self._hub.handle)
        app.router.add_get("/link", self._hub.handle)
        app.router.add_post("/response_url/{url_id}", self._handle_response_url)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]
        self.workspace.base_url = self.base_url
        self._hub.base_url = f"ws://127.0.0.1:{self._port}"
        await self._deliverer.start()

    async def close(self) -> None:
        """Stop background deliveries, close sockets and the server."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._hub.close()
        await self._deliverer.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SlackSim:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the running server."""
        if not self._port:
            raise RuntimeError("SlackSim is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_url(self) -> str:
        """The Web API base URL, ending in ``/``: ``SLACK_API_URL`` or ``AsyncWebClient(base_url=...)``."""
        return f"{self.base_url}/api/"

    # --- configuration knobs ---------------------------------------------------------------------

    @property
    def event_url(self) -> str | None:
        """Where HTTP Events API deliveries go (the app's ``/slack/events``); None: HTTP mode off."""
        return self._deliverer.event_url

    @event_url.setter
    def event_url(self, url: str | None) -> None:
        self._deliverer.event_url = url

    @property
    def signing_secret(self) -> str:
        """The secret HTTP deliveries are signed with; change it to send badly signed requests."""
        return self._deliverer.signing_secret

    @signing_secret.setter
    def signing_secret(self, secret: str) -> None:
        self._deliverer.signing_secret = secret

    @property
    def request_timestamp_offset(self) -> float:
        """Seconds added to ``X-Slack-Request-Timestamp`` (negative: replay an old request)."""
        return self._deliverer.request_timestamp_offset

    @request_timestamp_offset.setter
    def request_timestamp_offset(self, seconds: float) -> None:
        self._deliverer.request_timestamp_offset = seconds

    @property
    def ack_timeout(self) -> float:
        """Seconds the app has to acknowledge a delivery before it counts as failed."""
        return self._deliverer.ack_timeout

    @ack_timeout.setter
    def ack_timeout(self, seconds: float) -> None:
        self._deliverer.ack_timeout = seconds

    @property
    def retry_delays(self) -> tuple[float, ...]:
        """Waits before retry 1, 2, 3 of a failed event (seconds, multiplied by ``time_scale``)."""
        return self._deliverer.retry_delays

    @retry_delays.setter
    def retry_delays(self, delays: Sequence[float]) -> None:
        self._deliverer.retry_delays = tuple(delays)

    @property
    def ack_loss(self) -> AckLoss | None:
        """Lose a fraction of the app's event acks, so Slack retries those events (None: lose none)."""
        return self._deliverer.ack_loss

    @ack_loss.setter
    def ack_loss(self, loss: AckLoss | None) -> None:
        self._deliverer.ack_loss = loss

    @property
    def storm(self) -> Storm | None:
        """A 429 storm on some methods, on top of the rate limits (None: no storm)."""
        return self._api.storm

    @storm.setter
    def storm(self, storm: Storm | None) -> None:
        self._api.storm = storm

    @property
    def rate_limits(self) -> RateLimits:
        """The rate-limit table; assigning a new one resets all budgets."""
        return self._api.limiter.limits

    @rate_limits.setter
    def rate_limits(self, limits: RateLimits) -> None:
        self._api.limiter = RateLimiter(limits, time_scale=self.time_scale)

    @property
    def rate_limits_enabled(self) -> bool:
        """Whether calls are checked against ``rate_limits`` at all."""
        return self._api.rate_limits_enabled

    @rate_limits_enabled.setter
    def rate_limits_enabled(self, enabled: bool) -> None:
        self._api.rate_limits_enabled = enabled

    @property
    def agent_declared(self) -> bool:
        """Whether the app is declared as an agent; if not, ``agents.sessions.*`` fail ``not_authorized``."""
        return self._api.agent_declared

    @agent_declared.setter
    def agent_declared(self, declared: bool) -> None:
        self._api.agent_declared = declared

    @property
    def home_tab_enabled(self) -> bool:
        """The manifest's ``home_tab_enabled``; when off, ``views.publish`` fails ``not_enabled``."""
        return self._api.home_tab_enabled

    @home_tab_enabled.setter
    def home_tab_enabled(self, enabled: bool) -> None:
        self._api.home_tab_enabled = enabled

    @property
    def unknown_methods(self) -> set[str]:
        """Methods this workspace does not have (an older Slack, GovSlack): they answer ``unknown_method``.
        Add ``chat.startStream`` or ``agents.sessions.setStatus`` to it to play a workspace without
        native streaming or Agent Sessions."""
        return self._api.unknown_methods

    @property
    def chunk_types(self) -> set[str]:
        """The kinds of streaming ``chunks`` this workspace knows; others answer ``invalid_chunks``.
        Remove ``task_update`` and ``plan_update`` to play a Slack that streams text but no tasks."""
        return self._api.chunk_types

    @property
    def scopes(self) -> tuple[str, ...]:
        """The bot token's granted scopes."""
        return self._api.scopes

    def fail_next(
        self,
        method: str,
        *,
        error: str = "internal_error",
        status: int = 200,
        retry_after: float | None = None,
        count: int = 1,
        applied: bool = False,
    ) -> None:
        """Make the next ``count`` calls of ``method`` fail with ``{"ok": false, "error": error}``.

        ``status`` 429 or 5xx imitates rate limits and outages; ``retry_after`` adds the header.
        Injected failures come before rate limiting, so they spend no budget. With ``applied`` the
        call takes effect all the same and only its answer is the error: an answer lost on the way
        back (a proxy's 502, a timeout), after which the caller cannot know what happened.
        """
        fault = Fault(error, status, retry_after, count, applied=applied)
        self._api.faults.setdefault(method, deque()).append(fault)

    def hold_answer(self, method: str) -> asyncio.Event:
        """Carry out the calls of ``method`` but answer none until the returned event is set: the
        caller's side sees a call that did its work and never said so (a crash or a lost answer)."""
        held = self._api.held[method] = asyncio.Event()
        return held

    def clear_faults(self) -> None:
        """Drop every failure ``fail_next`` still has queued: Slack is well again."""
        self._api.faults.clear()

    # --- state: setup helpers ---------------------------------------------------------------------

    def add_user(
        self,
        user_id: str,
        name: str,
        *,
        real_name: str | None = None,
        team_id: str | None = None,
        is_restricted: bool = False,
        is_ultra_restricted: bool = False,
        email: str | None = None,
        channels: Iterable[str] = (GENERAL,),
    ) -> SimUser:
        """Add a user (a guest with ``is_restricted``, external with another ``team_id``) to channels."""
        user = self.workspace.add_user(
            user_id,
            name,
            real_name=real_name,
            team_id=team_id,
            is_restricted=is_restricted,
            is_ultra_restricted=is_ultra_restricted,
            email=email,
        )
        for channel_id in channels:
            self.workspace.channels[channel_id].members.add(user_id)
        self._notify()
        return user

    def add_channel(
        self,
        channel_id: str,
        name: str,
        *,
        kind: ChannelKind = "public",
        members: Iterable[str] = (ALICE, BOB, BOT_USER_ID),
        is_ext_shared: bool = False,
        is_archived: bool = False,
        team: str | None = None,
    ) -> SimChannel:
        """Add a conversation (to workspace ``team`` of the org, the first by default); the bot is
        in it only if ``BOT_USER_ID`` is among ``members``."""
        channel = self.workspace.add_channel(
            channel_id,
            name,
            kind=kind,
            members=members,
            is_ext_shared=is_ext_shared,
            is_archived=is_archived,
            team=team,
        )
        self._notify()
        return channel

    def add_team(self, team_id: str, name: str, *, bot_token: str | None = None) -> None:
        """Add a workspace to the org; ``bot_token``: the app's own installation in it."""
        self.workspace.add_team(team_id, name)
        if bot_token is not None:
            self._api.grant(bot_token, team_id)
        self._notify()

    def add_usergroup(
        self, group_id: str, handle: str, users: Iterable[str], *, enabled: bool = True
    ) -> SimUserGroup:
        """Add a user group (``S…``) with these members."""
        group = SimUserGroup(id=group_id, handle=handle, users=list(users), enabled=enabled)
        self.workspace.usergroups[group_id] = group
        self._notify()
        return group

    def add_im(self, user_id: str) -> SimChannel:
        """Open (or return) the DM between a user and the bot."""
        channel = self.workspace.add_im(user_id)
        self._notify()
        return channel

    def add_file(
        self,
        content: bytes,
        name: str,
        mimetype: str,
        *,
        user: str = ALICE,
        redirect_to: str | None = None,
        gzip: Compression = "never",
    ) -> JsonDict:
        """Upload a file; returns its Slack file object. ``redirect_to`` sends downloads to another host;
        ``gzip`` compresses its downloads (``accepted``: when the request accepts gzip, as a CDN does;
        ``always``: whatever the request asked)."""
        if not self._port:
            raise RuntimeError("start the simulator first: file URLs point at its address")
        file = self.workspace.add_file(content, name, mimetype, user=user, redirect_to=redirect_to, gzip=gzip)
        self._notify()
        return self.workspace.file_json(file)

    # --- state: queries ---------------------------------------------------------------------------

    def message(self, channel: str, ts: str) -> SimMessage | None:
        """The message ``ts`` in ``channel`` (deleted ones too, flagged ``deleted``)."""
        return self.workspace.message(channel, ts)

    def thread(self, channel: str, thread_ts: str) -> list[SimMessage]:
        """A thread: root first, then replies in ts order; deleted messages left out."""
        return self.workspace.thread(channel, thread_ts)

    def history(self, channel: str) -> list[SimMessage]:
        """Top-level messages of a channel, oldest first; deleted ones left out."""
        return [
            m for m in self.workspace.messages.get(channel, {}).values() if not m.deleted and not m.is_reply
        ]

    def ephemerals(self, user: str) -> list[Ephemeral]:
        """Ephemeral messages shown to ``user``, oldest first."""
        return [e for e in self.workspace.ephemerals if e.user == user]

    def modal(self, user: str) -> JsonDict | None:
        """The modal open on top for ``user``, if any."""
        stack = self.workspace.modals.get(user)
        return stack[-1] if stack else None

    def view_errors(self, user: str) -> dict[str, str]:
        """The field errors the app showed on ``user``'s open modal after their last submission."""
        return dict(self.workspace.view_errors.get(user, {}))

    def home_view(self, user: str) -> JsonDict | None:
        """The latest Home tab view published for ``user``."""
        return self.workspace.home_views.get(user)

    @property
    def agent_sessions(self) -> dict[tuple[str, str | None], AgentSession]:
        """Agent Sessions by (channel_id, thread_ts)."""
        return self.workspace.agent_sessions

    @property
    def assistant_status(self) -> dict[tuple[str, str], str]:
        """Current ``assistant.threads.setStatus`` text by (channel_id, thread_ts)."""
        return self.workspace.assistant_status

    @property
    def deliveries(self) -> list[Delivery]:
        """Every delivery attempt to the app, in the order they were sent."""
        return self._deliverer.deliveries

    @property
    def deliveries_under_way(self) -> int:
        """Background deliveries not finished yet, waits before a retry included."""
        return len(self._tasks)

    @property
    def socket_connections(self) -> int:
        """How many Socket Mode clients are connected."""
        return self._hub.connection_count

    def calls_to(self, method: str) -> list[ApiCall]:
        """The recorded calls of one Web API method."""
        return [c for c in self.calls if c.method == method]

    def render_thread(self, channel: str, thread_ts: str) -> str:
        """A readable transcript of a thread ("alice: ..." / "bot: ..."), for terminal demos."""
        lines: list[str] = []
        for message in self.thread(channel, thread_ts):
            text_lines = message.visible_text.splitlines() or [""]
            head = f"{self.workspace.display_name(message.user)}: {text_lines[0]}"
            lines.append(head)
            lines.extend(f"    {line}" for line in text_lines[1:])
            lines.extend(f"    [file {f.get('name')}]" for f in message.files)
            lines.extend(f"    [{c.get('status', 'plan')}] {c.get('title', '')}" for c in message.chunks)
            marks = [
                f":{name}: {', '.join(self.workspace.display_name(u) for u in users)}"
                for name, users in message.reactions.items()
            ]
            if message.streaming:
                marks.append("streaming…")
            if message.edited:
                marks.append("edited")
            if marks:
                lines[len(lines) - 1] += "  [" + "] [".join(marks) + "]"
        return "\n".join(lines)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` is true; it is re-checked after every change of simulator state.

        Raises ``TimeoutError`` naming the predicate and the latest calls and deliveries.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(self._timeout_report(predicate, timeout))
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    def _timeout_report(self, predicate: Callable[[], bool], timeout: float) -> str:
        name = getattr(predicate, "__qualname__", repr(predicate))
        calls = ", ".join(
            f"{c.method}->{c.status}{'' if c.ok else ' ' + str(c.error)}" for c in self.calls[-8:]
        )
        deliveries = ", ".join(
            f"{d.event_type}#{d.attempt}:{'acked' if d.acked else d.failure or 'pending'}"
            for d in self.deliveries[-8:]
        )
        return (
            f"condition {name} still false after {timeout}s; "
            f"last API calls: [{calls}]; last deliveries: [{deliveries}]"
        )

    def _notify(self) -> None:
        """Wake every ``wait_for``: state changed."""
        self._changed.set()
        self._changed = asyncio.Event()

    # --- users acting ------------------------------------------------------------------------------

    async def user_says(
        self,
        user: str,
        channel: str,
        text: str,
        *,
        thread_ts: str | None = None,
        files: Sequence[JsonDict] | None = None,
        wait_ack: bool = True,
    ) -> str:
        """Post a message as a user; delivers ``message`` and, for a mention outside DMs, ``app_mention``.

        Returns the message ts once every delivery was acknowledged or finally failed (at once with
        ``wait_ack=False``). ``files`` are file objects from ``add_file``; they make a file_share.
        """
        conversation = self._conversation(channel, user)
        author = self.workspace.users.get(user)
        root_ts: str | None = None
        if thread_ts is not None:
            root = self.workspace.message(channel, thread_ts)
            if root is None:
                raise ValueError(f"no message {thread_ts} in {channel} to reply to")
            root_ts = root.thread_ts if root.is_reply else root.ts
        message = self.workspace.store(
            SimMessage(
                channel=channel,
                ts=self.workspace.clock.next(),
                text=text,
                user=user,
                blocks=rich_text_blocks(text) if text else [],
                thread_ts=root_ts,
                subtype="file_share" if files else None,
                files=[dict(f) for f in files or ()],
                client_msg_id=str(uuid.uuid4()),
                team=author.team_id if author else self.team_id,
            )
        )
        self._notify()
        events = [self._events.message(message, conversation)]
        if conversation.kind != "im" and is_bot_mention(text, self.workspace.bot_of(conversation.team)[0]):
            events.append(self._events.app_mention(message, conversation))
        await self._run([self._deliver(event, conversation) for event in events], wait_ack)
        return message.ts

    async def edit(self, user: str, channel: str, ts: str, text: str, *, wait_ack: bool = True) -> None:
        """Edit a user's own message; delivers ``message_changed``."""
        conversation = self._conversation(channel, user)
        message = self._users_message(channel, ts, user)
        previous = self.workspace.message_json(message)
        message.text, message.blocks = text, rich_text_blocks(text)
        message.edited_ts, message.edited_by = self.workspace.clock.next(), user
        self._notify()
        event = self._events.message_changed(message, conversation, previous)
        await self._run([self._deliver(event, conversation)], wait_ack)

    async def delete(self, user: str, channel: str, ts: str, *, wait_ack: bool = True) -> None:
        """Delete a user's own message; delivers ``message_deleted``. A thread's root that has replies
        stays as a tombstone ("This message was deleted.", by Slackbot) that keeps its thread, and
        Slack tells apps with a ``message_changed`` carrying it (vercel/chat's Slack adapter tests,
        packages/adapter-slack/src/index.test.ts, "ignores message_changed tombstone subtypes")."""
        conversation = self._conversation(channel, user)
        message = self._users_message(channel, ts, user)
        previous = self.workspace.message_json(message)
        if not message.is_reply and self.workspace.replies(message):
            self.workspace.tombstone(message)
            event = self._events.message_changed(message, conversation, previous)
        else:
            message.deleted = True
            event = self._events.message_deleted(message, conversation, previous)
        self._notify()
        await self._run([self._deliver(event, conversation)], wait_ack)

    async def react(self, user: str, channel: str, ts: str, name: str, *, wait_ack: bool = True) -> None:
        """Add a reaction as a user; delivers ``reaction_added``."""
        conversation, message = self._reaction_target(user, channel, ts)
        users = message.reactions.setdefault(name, [])
        if user in users:
            raise ValueError(f"{user} already reacted :{name}: to {ts}")
        users.append(user)
        self._notify()
        event = self._events.reaction("reaction_added", user, message, name)
        await self._run([self._deliver(event, conversation)], wait_ack)

    async def unreact(self, user: str, channel: str, ts: str, name: str, *, wait_ack: bool = True) -> None:
        """Remove a user's reaction; delivers ``reaction_removed``."""
        conversation, message = self._reaction_target(user, channel, ts)
        users = message.reactions.get(name, [])
        if user not in users:
            raise ValueError(f"{user} has no :{name}: on {ts}")
        users.remove(user)
        if not users:
            del message.reactions[name]
        self._notify()
        event = self._events.reaction("reaction_removed", user, message, name)
        await self._run([self._deliver(event, conversation)], wait_ack)

    async def stop_session(self, user: str, channel: str, thread_ts: str, *, wait_ack: bool = True) -> None:
        """Click the native Stop button of a thread's Agent Session (reference 12.2).

        Slack offers Stop only while the session is ``processing`` and the app subscribes to
        ``agent_session_stopped``. Slack stops the app's streams in the thread itself, but leaves the
        session's status alone: moving it out of ``processing`` is the app's job.
        """
        conversation = self._conversation(channel, user)
        session = self.workspace.agent_sessions.get((channel, thread_ts))
        if session is None or session.status != "processing":
            raise ValueError(f"no processing agent session in thread {thread_ts} of {channel}")
        if "agent_session_stopped" not in self.subscriptions:
            raise ValueError(
                "Slack shows no Stop button: the app does not subscribe to agent_session_stopped"
            )
        stopped = [m for m in self.workspace.thread(channel, thread_ts) if m.streaming]
        for message in stopped:
            message.streaming = False
        self._notify()
        event = self._events.agent_session_stopped(user, channel, thread_ts, [m.ts for m in stopped])
        await self._run([self._deliver(event, conversation)], wait_ack)

    async def rename_session(
        self, user: str, channel: str, thread_ts: str, title: str, *, wait_ack: bool = True
    ) -> None:
        """Rename a thread's Agent Session as a person; delivers ``agent_session_title_changed``."""
        conversation = self._conversation(channel, user)
        session = self.workspace.agent_sessions.get((channel, thread_ts))
        if session is None:
            raise ValueError(f"no agent session in thread {thread_ts} of {channel}")
        previous, session.title = session.title, title
        self._notify()
        event = self._events.agent_session_title_changed(user, channel, thread_ts, title, previous)
        await self._run([self._deliver(event, conversation)], wait_ack)

    async def click(
        self, user: str, channel: str, message_ts: str, action_id: str, value: str | None = None
    ) -> AppResponse:
        """Click the button ``action_id`` on a message; sends ``block_actions`` and returns the app's answer.

        ``value`` overrides the button's own value.
        """
        conversation = self._conversation(channel, user)
        message = self.workspace.message(channel, message_ts)
        action = find_action(message.blocks, action_id) if message is not None else None
        if message is None or action is None:
            raise ValueError(f"no element {action_id!r} on message {message_ts} in {channel}")
        if value is not None:
            action["value"] = value
        _, response_url = self._response_url(channel, user, message_ts)
        payload = self._events.block_actions(user, conversation, message, action, response_url=response_url)
        self._issue_trigger(payload["trigger_id"], user)
        return await self._deliverer.deliver_interaction("interactive", payload)

    async def shortcut(self, user: str, channel: str, message_ts: str, callback_id: str) -> AppResponse:
        """Use the message shortcut ``callback_id`` on a message; sends ``message_action``."""
        conversation = self._conversation(channel, user)
        message = self.workspace.message(channel, message_ts)
        if message is None:
            raise ValueError(f"no message {message_ts} in {channel}")
        _, response_url = self._response_url(channel, user, message_ts)
        payload = self._events.message_action(
            user, conversation, message, callback_id, response_url=response_url
        )
        self._issue_trigger(payload["trigger_id"], user)
        return await self._deliverer.deliver_interaction("interactive", payload)

    async def click_home(
        self, user: str, action_id: str, *, value: str | None = None, block_id: str | None = None
    ) -> AppResponse:
        """Click the button ``action_id`` on the user's Home tab (in block ``block_id``, when several
        blocks have one); sends ``block_actions`` from the view and returns the app's answer."""
        view = self.workspace.home_views.get(user)
        blocks = [
            b for b in (view or {}).get("blocks", []) if block_id is None or b.get("block_id") == block_id
        ]
        action = find_action(blocks, action_id)
        if view is None or action is None:
            raise ValueError(f"no element {action_id!r} on {user}'s Home tab")
        if value is not None:
            action["value"] = value
        payload = self._events.view_block_actions(user, view, action)
        self._issue_trigger(payload["trigger_id"], user)
        return await self._deliverer.deliver_interaction("interactive", payload)

    async def slash_command(self, user: str, channel: str, command: str, text: str = "") -> AppResponse:
        """Run ``/command text`` as a user; returns the app's answer and shows it like Slack would."""
        conversation = self._conversation(channel, user)
        url_id, response_url = self._response_url(channel, user, None)
        fields = self._events.slash_command(user, conversation, command, text, response_url=response_url)
        self._issue_trigger(fields["trigger_id"], user)
        response = await self._deliverer.deliver_interaction("slash_commands", fields)
        if response.status == 200 and response.body.strip():
            try:
                reply = json.loads(response.body)
            except ValueError:
                reply = {"text": response.body}
            if isinstance(reply, dict):
                self._apply_response(self._response_targets[url_id], reply)
        return response

    async def submit_view(self, user: str, values: Mapping[str, Mapping[str, str]]) -> AppResponse:
        """Submit the user's open modal with text typed into its inputs (``{block_id: {action_id: text}}``).

        Sends ``view_submission`` and shows the app's answer as Slack does: an empty answer or
        ``clear`` closes the modal, ``errors`` keeps it open with the errors under the fields,
        ``update`` replaces it and ``push`` stacks a new one. Any other answer leaves it open.
        """
        view = self.modal(user)
        if view is None:
            raise ValueError(f"{user} has no modal open")
        state = {
            block_id: {
                action_id: {"type": "plain_text_input", "value": text} for action_id, text in fields.items()
            }
            for block_id, fields in values.items()
        }
        trigger_id = self._events.trigger_id()
        self._issue_trigger(trigger_id, user)
        payload = self._events.view_submission(user, view, state, trigger_id=trigger_id)
        response = await self._deliverer.deliver_interaction("interactive", payload)
        self._apply_view_response(user, view, response)
        self._notify()
        return response

    async def close_view(self, user: str) -> AppResponse | None:
        """Close the user's open modal with its Close button: the whole stack goes, as in Slack, and
        the app hears ``view_closed`` only when the view asked for it with ``notify_on_close``
        (the app's answer then; None when nothing was sent)."""
        view = self.modal(user)
        if view is None:
            raise ValueError(f"{user} has no modal open")
        self.workspace.modals.pop(user, None)
        self.workspace.view_errors.pop(user, None)
        self._notify()
        if not view.get("notify_on_close"):
            return None
        return await self._deliverer.deliver_interaction("interactive", self._events.view_closed(user, view))

    def _apply_view_response(self, user: str, view: JsonDict, response: AppResponse) -> None:
        stack = self.workspace.modals.setdefault(user, [])
        self.workspace.view_errors.pop(user, None)
        if response.status != 200:
            return
        try:
            answer = json.loads(response.body) if response.body.strip() else {}
        except ValueError:
            return
        action = answer.get("response_action") if isinstance(answer, dict) else None
        new_view = answer.get("view") if isinstance(answer, dict) else None
        if action == "clear":
            stack.clear()
        elif action is None:
            stack.pop()
        elif action == "errors":
            self.workspace.view_errors[user] = dict(answer.get("errors") or {})
        elif action == "update" and isinstance(new_view, dict):
            stack[-1] = self._api.modal_view(new_view, view_id=view["id"])
        elif action == "push" and isinstance(new_view, dict):
            stack.append(self._api.modal_view(new_view))

    async def open_home(self, user: str, tab: str = "home", *, wait_ack: bool = True) -> None:
        """Open the app's Home (or Messages) tab as a user; delivers ``app_home_opened``."""
        conversation = self.workspace.add_im(user)
        event = self._events.app_home_opened(user, conversation, tab)
        await self._run([self._deliver(event, conversation)], wait_ack)

    async def deliver_event(
        self, event: JsonDict, *, retry_num: int | None = None, wrap: bool = True
    ) -> Delivery:
        """Deliver any event as is, subscribed or not (for malformed-input and duplicate tests).

        ``wrap`` puts it in a fresh ``event_callback`` envelope; ``wrap=False`` sends ``event`` as the
        whole body (e.g. a previous ``Delivery.payload`` to replay it). With ``retry_num`` exactly one
        attempt is made, carrying that ``X-Slack-Retry-Num``.
        """
        if wrap:
            channel = self.workspace.channels.get(str(event.get("channel", "")))
            body = self._events.callback(event, channel=channel)
        else:
            body = event
        return await self._deliverer.deliver_event(body, retry_num=retry_num)

    @property
    def oauth(self) -> SlackOAuth:
        """The app's OAuth install flow (``/oauth/v2/authorize``, ``oauth.v2.access``) and its tokens."""
        return self._api.oauth

    async def uninstall_app(
        self, team_id: str | None = TEAM_ID, enterprise_id: str | None = None
    ) -> Delivery:
        """Remove the app from a team (or, with ``team_id`` None, from an org): its tokens are revoked and
        ``app_uninstalled`` is delivered, as Slack does."""
        self.oauth.uninstall(team_id, enterprise_id)
        body = self._events.callback(
            {"type": "app_uninstalled", "event_ts": f"{time.time():.6f}"}, channel=None
        )
        body.update(team_id=team_id or "", enterprise_id=enterprise_id)
        body["authorizations"][0].update(
            team_id=team_id, enterprise_id=enterprise_id, is_enterprise_install=team_id is None
        )
        return await self._deliverer.deliver_event(body)

    async def disconnect_socket_mode(self, reason: str = "refresh_requested") -> None:
        """Send Socket Mode clients a ``disconnect`` frame, then close their connections."""
        await self._hub.disconnect(reason, grace=self.ack_timeout)

    # --- internals -----------------------------------------------------------------------------------

    def _conversation(self, channel: str, user: str) -> SimChannel:
        conversation = self.workspace.channels.get(channel)
        if conversation is None:
            raise ValueError(f"no conversation {channel}")
        if user not in conversation.members:
            raise ValueError(f"{user} is not a member of {channel}")
        return conversation

    def _users_message(self, channel: str, ts: str, user: str) -> SimMessage:
        message = self.workspace.message(channel, ts)
        if message is None or message.deleted:
            raise ValueError(f"no message {ts} in {channel}")
        if message.user != user or message.bot_id is not None:
            raise ValueError(f"{user} can only change their own messages")
        return message

    def _reaction_target(self, user: str, channel: str, ts: str) -> tuple[SimChannel, SimMessage]:
        conversation = self._conversation(channel, user)
        message = self.workspace.message(channel, ts)
        if message is None or message.deleted:
            raise ValueError(f"no message {ts} in {channel}")
        return conversation, message

    def _subscribed(self, event: JsonDict, channel: SimChannel) -> bool:
        """Slack delivers an event only if subscribed, and only from conversations the bot is in."""
        kind = event.get("type")
        key = MESSAGE_SUBSCRIPTION[channel.kind] if kind == "message" else kind
        return key in self.subscriptions and self.workspace.is_member(channel)

    async def _deliver(self, event: JsonDict, channel: SimChannel) -> Delivery | None:
        if not self._subscribed(event, channel):
            return None
        return await self._deliverer.deliver_event(self._events.callback(event, channel=channel))

    def _echo(self, event: JsonDict, channel: SimChannel) -> None:
        """The app's own posts, edits and reactions come back to it as events, as in Slack."""
        if self.echo_bot_messages:
            self._spawn(self._deliver(event, channel))
        self._notify()

    async def _run(self, deliveries: list[Coroutine[Any, Any, Delivery | None]], wait: bool) -> None:
        if wait:
            await asyncio.gather(*deliveries)
        else:
            for delivery in deliveries:
                self._spawn(delivery)

    def _spawn(self, work: Awaitable[Any]) -> None:
        """Run a delivery in the background; kept referenced, failures logged, cancelled on close."""

        async def guarded() -> None:
            try:
                await work
            except Exception:
                logger.exception("background delivery failed")

        task = asyncio.create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._notify()

    def _issue_trigger(self, trigger_id: str, user: str) -> None:
        """Remember a trigger handed to the app, so ``views.open`` can check it."""
        self.workspace.triggers[trigger_id] = Trigger(user=user, issued_at=time.time())

    def _response_url(self, channel: str, user: str, message_ts: str | None) -> tuple[str, str]:
        """A fresh response_url (id and URL) answering for this message or command."""
        url_id = uuid.uuid4().hex
        self._response_targets[url_id] = _ResponseTarget(channel=channel, user=user, message_ts=message_ts)
        return url_id, f"{self.base_url}/response_url/{url_id}"

    def _apply_response(self, target: _ResponseTarget, reply: JsonDict) -> None:
        """Show a response_url post or command reply: replace/delete the original, post, or whisper."""
        original = self.workspace.message(target.channel, target.message_ts) if target.message_ts else None
        conversation = self.workspace.channels[target.channel]
        if original is not None and (reply.get("delete_original") or reply.get("replace_original")):
            previous = self.workspace.message_json(original)
            if reply.get("delete_original"):
                original.deleted = True
                self._echo(self._events.message_deleted(original, conversation, previous), conversation)
                return
            original.text, original.blocks = str(reply.get("text", "")), list(reply.get("blocks", []))
            original.markdown_text = None
            original.edited_ts, original.edited_by = self.workspace.clock.next(), BOT_USER_ID
            self._echo(self._events.message_changed(original, conversation, previous), conversation)
            return
        text, blocks = str(reply.get("text", "")), list(reply.get("blocks", []))
        thread_ts = reply.get("thread_ts")
        if reply.get("response_type") == "in_channel":
            message = self.workspace.store(
                SimMessage(
                    channel=target.channel,
                    ts=self.workspace.clock.next(),
                    text=text,
                    user=BOT_USER_ID,
                    bot_id=BOT_ID,
                    blocks=blocks,
                    thread_ts=thread_ts if isinstance(thread_ts, str) else None,
                )
            )
            self._echo(self._events.message(message, conversation), conversation)
            return
        self.workspace.ephemerals.append(
            Ephemeral(
                channel=target.channel,
                user=target.user,
                ts=self.workspace.clock.next(),
                text=text,
                blocks=blocks,
                markdown_text=None,
                thread_ts=thread_ts if isinstance(thread_ts, str) else None,
            )
        )
        self._notify()

    # --- HTTP handlers ---------------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        received = time.monotonic()
        method = request.match_info["method"]
        params, token, parse_error = await _read_params(request)
        if self.latency:
            await asyncio.sleep(self.latency)
        if parse_error is not None:
            result = ApiResult(200, {"ok": False, "error": parse_error})
        elif method == "oauth.v2.access":  # the app's credentials, not a token, authenticate it
            result = ApiResult(200, self.oauth.access(params, request.headers.get("Authorization", "")))
        else:
            result = await self._api.call(method, params, token)
        if result.status == 429:
            self.ratelimited_count += 1
        installation = self._api.installation_of(token)
        call = ApiCall(method, params, received, result.status, result.ok, result.error, token, installation)
        self.calls.append(call)
        self._notify()
        return web.json_response(result.body, status=result.status, headers=result.headers)

    async def _handle_authorize(self, request: web.Request) -> web.Response:
        """Slack's consent screen, approving at once: back to the app's redirect URL with a code."""
        status, where = self.oauth.consent(dict(request.query))
        if status != 302:
            return web.Response(status=status, text=f"Slack could not install this app: {where}")
        raise web.HTTPFound(where)

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        """Serve a file to the bot token with files:read; anyone else is sent to the sign-in page."""
        accept_encoding = request.headers.get("Accept-Encoding", "")
        self.file_requests.append(FileRequest(request.path, accept_encoding))
        authorization = request.headers.get("Authorization", "")
        authorised = authorization == f"Bearer {self.bot_token}" and "files:read" in self.scopes
        if not authorised:
            raise web.HTTPFound(f"/?redir={quote(request.path_qs, safe='')}")
        team, _, file_id = request.match_info["key"].partition("-")
        file = self.workspace.files.get(file_id)
        if team != self.team_id or file is None or file.name != request.match_info["name"]:
            raise web.HTTPNotFound(text="file not found")
        if file.redirect_to is not None:
            raise web.HTTPFound(file.redirect_to)
        headers = {}
        if request.path.startswith(f"/files-pri/{team}-{file_id}/download/"):
            headers["Content-Disposition"] = f'attachment; filename="{file.name}"'
        body = file.content
        if file.gzip == "always" or (file.gzip == "accepted" and "gzip" in accept_encoding.lower()):
            body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
        return web.Response(body=body, content_type=file.mimetype, headers=headers)

    async def _handle_upload(self, request: web.Request) -> web.Response:
        """Step two of an external upload: the URL ``files.getUploadURLExternal`` gave takes the bytes
        as the request's body (raw, or a multipart form's one file, as Slack's own clients send it)
        and answers 200 ``OK - <size>``; the URL is its own credential, no token is asked."""
        upload = self.workspace.uploads.get(request.match_info["key"])
        if upload is None:
            return web.Response(status=404, text="upload_not_found")
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            field = next((v for v in form.values() if isinstance(v, web.FileField)), None)
            content = field.file.read() if field is not None else b""
        else:
            content = await request.read()
        upload.content = content
        self.upload_requests.append(request.match_info["key"])
        return web.Response(text=f"OK - {len(content)}")

    async def _handle_sign_in(self, request: web.Request) -> web.Response:
        """Where unauthorised file downloads land: an HTML page, 200, as on slack.com."""
        return web.Response(text=_SIGN_IN_PAGE, content_type="text/html")

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        """Record a response_url post and show its effect; each URL works five times."""
        url_id = request.match_info["url_id"]
        target = self._response_targets.get(url_id)
        if target is None:
            return web.Response(status=404, text="no_service")
        target.uses += 1
        if target.uses > RESPONSE_URL_MAX_USES:
            return web.Response(status=404, text="used_url")
        try:
            body = await request.json()
        except ValueError:
            return web.Response(status=400, text="invalid_payload")
        if not isinstance(body, dict):
            return web.Response(status=400, text="invalid_payload")
        self.response_url_posts.append(ResponseUrlPost(url_id, body, time.monotonic()))
        self._apply_response(target, body)
        return web.Response(text="ok")


async def _read_params(request: web.Request) -> tuple[JsonDict, str | None, str | None]:
    """Merge query string, form body and JSON body the way Slack does; returns (params, token, error).

    The token comes from ``Authorization: Bearer`` or, for form posts, a ``token`` field; a token in
    the query string or inside a JSON body is ignored, as Slack ignores it.
    """
    params: JsonDict = {k: v for k, v in request.query.items() if k != "token"}
    token: str | None = None
    if request.content_type == "application/json":
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            return params, None, "invalid_json"
        if isinstance(body, dict):
            params.update({k: v for k, v in body.items() if k != "token"})
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, str):
                if key == "token":
                    token = value
                else:
                    params[key] = value
    authorization = request.headers.get("Authorization", "")
    if authorization.startswith("Bearer "):
        token = authorization.removeprefix("Bearer ").strip()
    return params, token, None
