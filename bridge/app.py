"""Composition root: builds every object of a running bridge from ``Settings`` and runs its lifecycle.

Each start is a replica with an id of its own; on PostgreSQL several share the work through leases
(``relay.leases``), on SQLite the database serves one (``db.sole`` refuses a second).

Start order: database (migrated) -> Coder (generation detected) -> Slack (auth.test; installed
through OAuth, the installations' store and flow instead) -> relay ->
stored Slack output and busy chats resumed -> HTTP endpoints -> Socket Mode (if configured). Stop
order, all within one deadline: stop taking events, let in-flight handlers finish, close streams
(cursor and final texts are stored together after every batch), drain the outbox, release
connections.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from functools import partial

import aiohttp
from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped, warning_token_skipped
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator
from slack_sdk.web.async_client import AsyncWebClient

from bridge import tracing
from bridge.coder.aisdk import AiSdkBackend, AiSdkOptions
from bridge.coder.aisdk_store import AiSdkStore
from bridge.coder.backend import CoderBackend, connect_backend
from bridge.coder.backoff import Backoff
from bridge.coder.errors import CoderModelUnknown
from bridge.coder.stream import ReconnectPolicy
from bridge.config import Settings, encryption_keys
from bridge.db import repo
from bridge.db.engine import Database
from bridge.db.migrate import upgrade
from bridge.db.sole import AlreadyServed, SoleServer
from bridge.metrics import Metrics
from bridge.relay.adoption import Adoption
from bridge.relay.agent_files import AgentFiles
from bridge.relay.aisdk_store import DatabaseAiSdkStore
from bridge.relay.attempts import LinkThrottle
from bridge.relay.budgets import SharedBudgets
from bridge.relay.chat_commands import ChatCommands
from bridge.relay.cipher import TokenCipher
from bridge.relay.controls import Control, Controls
from bridge.relay.home import Home
from bridge.relay.identity import Identity
from bridge.relay.inbound import ContextLimits, Inbound
from bridge.relay.installations import Installations, OAuthStates
from bridge.relay.intake import Intake, integrity_key
from bridge.relay.leases import REPLICA, Leases
from bridge.relay.limits import SlackLimits, WorkspaceLimits
from bridge.relay.links import Headers
from bridge.relay.marks import ReactionNames
from bridge.relay.outbox import Outbox
from bridge.relay.pace import Pace
from bridge.relay.pickup import Pickup
from bridge.relay.policy import Policy, Rules
from bridge.relay.ports import SlackPoster
from bridge.relay.renames import Renames
from bridge.relay.sessions import SessionMirror
from bridge.relay.supervisor import Supervisor
from bridge.relay.takeover import Takeover, prune_events
from bridge.relay.watcher import Watcher
from bridge.slack import commands, events, home_tab, shortcuts, signing
from bridge.slack.directory import WebDirectory
from bridge.slack.echoes import EchoFilter
from bridge.slack.files import SlackFileSource
from bridge.slack.history import ThreadReader
from bridge.slack.home_view import HowTo
from bridge.slack.installations import (
    DatabaseInstallationStore,
    DatabaseStateStore,
    InstalledBots,
)
from bridge.slack.oauth import INSTALL_PATH, REDIRECT_PATH, oauth_flow, register_uninstalls
from bridge.slack.observed import ObservedApp
from bridge.slack.poster import WebPoster
from bridge.slack.routing import BotAuthorize, RoutedClient, act_for_request
from bridge.slack.scopes import REQUIRED_SCOPES
from bridge.slack.sessions import WebSessions
from bridge.slack.streaming import StreamingPoster
from bridge.slack.uploads import WebUploads
from bridge.slack.workspaces import BotInstall, Bots, BotTokens, SingleInstall, WorkspaceKey, acting
from bridge.tasks import TaskGroup
from bridge.tracing import TracedCoderCalls

log = logging.getLogger(__name__)


OAUTH_STATE_SECONDS = 600
"""How long an installation started at ``/slack/install`` may take to come back from Slack."""


@dataclass(frozen=True)
class _Distribution:
    """What installing into many workspaces through OAuth takes."""

    installations: Installations
    store: DatabaseInstallationStore
    bots: InstalledBots
    flow: AsyncOAuthFlow


class StartupError(Exception):
    """The bridge cannot start; the message is one line an operator can act on."""


@dataclass(frozen=True)
class SlackIdentity:
    """Who the bot is in its workspace, or its Enterprise Grid org (from ``auth.test``)."""

    team_id: str | None
    """None for an org-wide install, which serves every workspace of ``enterprise_id``."""
    bot_user_id: str
    bot_id: str
    scopes: frozenset[str]
    url: str = ""
    """The workspace's address (``https://example.slack.com/``), for permalinks built without a call."""
    enterprise_id: str | None = None

    @property
    def home(self) -> str:
        """The workspace whose budgets calls made outside any act draw on (the org's, org-wide)."""
        return self.key.budget_team

    @property
    def serves(self) -> str:
        """Where the bot acts, for the start-up log and ``bridge doctor``."""
        return f"team {self.team_id}" if self.team_id else f"every workspace of {self.enterprise_id}"

    @property
    def key(self) -> WorkspaceKey:
        return WorkspaceKey(self.enterprise_id, self.team_id)

    def install(self, bot_token: str) -> BotInstall:
        """The installation of ``bot_token`` this identity describes."""
        return BotInstall(self.key, bot_token, self.bot_user_id, self.bot_id, self.scopes)


async def slack_identity(client: AsyncWebClient, limits: SlackLimits) -> SlackIdentity:
    """Call ``auth.test``; a bad token or unreachable Slack becomes a ``StartupError``."""
    try:
        response = await limits.call("auth.test", client.auth_test)
    except SlackApiError as exc:
        raise StartupError(f"Slack rejected SLACK_BOT_TOKEN: {exc.response.get('error')}") from None
    except Exception as exc:  # any transport failure: the reason matters, not the type
        raise StartupError(
            f"Slack is unreachable at {client.base_url}: {type(exc).__name__}: {exc}"
        ) from None
    scopes = response.headers.get("x-oauth-scopes") or response.headers.get("X-OAuth-Scopes") or ""
    org_wide = bool(response.get("is_enterprise_install"))
    enterprise = response.get("enterprise_id")
    return SlackIdentity(
        team_id=None if org_wide else str(response["team_id"]),
        enterprise_id=str(enterprise) if enterprise else None,
        bot_user_id=str(response["user_id"]),
        bot_id=str(response.get("bot_id") or ""),
        scopes=frozenset(s.strip() for s in scopes.split(",") if s.strip()),
        url=str(response.get("url") or ""),
    )


def ai_sdk_options(settings: Settings, store: AiSdkStore | None = None) -> AiSdkOptions:
    """The settings that only Coder's 2025 AI-SDK chat API uses (ignored by the other generations)."""
    return AiSdkOptions(
        model=settings.coder_model, store=store, archive_deletes=settings.aisdk_archive_deletes
    )


def _learned_pace(pace: Pace) -> float:
    return pace.per_minute


def _refused_pace(pace: Pace) -> float:
    return pace.learned.ceiling or 0.0


class _BoltTokenNotice(logging.Filter):
    """Drops Bolt's start-up notices that SLACK_BOT_TOKEN (which Bolt also reads from the environment)
    goes unused: the bridge hands Bolt its token through ``authorize`` on purpose."""

    _NOTICES = frozenset({warning_client_prioritized_and_token_skipped(), warning_token_skipped()})

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in self._NOTICES


def _bolt_logger() -> logging.Logger:
    logger = logging.getLogger("bridge.slack.bolt")
    if not any(isinstance(f, _BoltTokenNotice) for f in logger.filters):
        logger.addFilter(_BoltTokenNotice())
    return logger


async def open_intake(
    db: Database, settings: Settings, schema_before: str | None, leases: Leases | None = None
) -> Intake:
    """The durable intake, its records tagged under a key from the Slack secret; when the migration
    from ``schema_before`` just added the tags, the unfinished records made before them are tagged."""
    secret = settings.intake_secret
    assert secret is not None  # ``require_serve`` and ``bridge migrate`` checked
    intake = Intake(db, integrity_key(secret.get_secret_value()), leases)
    adopted = await intake.adopt(schema_before)
    if adopted:
        log.info("tagged %d Slack events recorded before this upgrade, to be handled", adopted)
    return intake


class Bridge:
    """A running bridge: Slack intake, Coder streams, HTTP endpoints."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.db = Database(settings.database_url)
        self.replica_id = uuid.uuid4().hex
        """This process's id among the replicas sharing the database (drawn anew at every start): the
        holder of its leases and the row of its share of the Slack budgets."""
        self.leases = Leases(
            self.db, self.replica_id, duration=settings.lease_duration, heartbeat=settings.lease_heartbeat
        )
        self._sole = SoleServer(self.db.url)
        self.port: int | None = None
        self.metrics_port: int | None = None
        """Where ``/metrics`` is served when it has its own listener (``BRIDGE_METRICS_PORT``)."""
        self.coder_reason = ""
        self.limits: SlackLimits | None = None
        """The workspace's Slack budgets, once started (every Slack call draws on them)."""
        self.budgets: SharedBudgets | None = None
        """This replica's share of the Slack budgets and the learned paces, synced with the database."""
        self._other_budgets: list[SharedBudgets] = []
        """The same for each further workspace acted in (an org-wide install's, many installs')."""
        self._budget_tasks = TaskGroup("budgets")
        self._backend: CoderBackend | None = None
        self._coder_tasks = TaskGroup("coder")
        """Background work of the Coder backends (the 2025 AI-SDK API's reply readers)."""
        self._identity: Identity | None = None
        self._http: aiohttp.ClientSession | None = None
        self._files: SlackFileSource | None = None
        self._inbound: Inbound | None = None
        self._controls: Controls | None = None
        self._renames: Renames | None = None
        self._outbox: Outbox | None = None
        self._supervisor: Supervisor | None = None
        self._agent_files: AgentFiles | None = None
        self._sessions: SessionMirror | None = None
        self._watcher: Watcher | None = None
        self._home: Home | None = None
        self._runners: list[web.AppRunner] = []
        self._socket: AsyncSocketModeHandler | None = None
        self._accepting = False
        self._slack_ok = False
        self._traces: TracerProvider | None = None
        """Where traces go while ``BRIDGE_OTEL_ENABLED`` has them exported."""
        self._oauth: _Distribution | None = None
        """The installations and the OAuth flow, when installed into workspaces through OAuth."""

    async def start(self) -> None:
        """Bring everything up; raises ``StartupError`` with a one-line reason when it cannot."""
        settings = self.settings
        settings.require_serve()
        assert settings.coder_url is not None
        assert settings.coder_session_token is not None
        bot_token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
        if settings.otel_enabled:
            self._traces = tracing.export_otlp()
        try:
            self._sole.claim()
        except AlreadyServed as exc:
            raise StartupError(str(exc)) from None
        try:
            schema_before = await upgrade(self.db)
            await prune_events(self.db)
            held = await self.leases.acquire(f"{REPLICA}{self.replica_id}")
        except Exception as exc:
            raise StartupError(f"database {self.db.engine.url.render_as_string()} unusable: {exc}") from None
        assert held is not None  # its id is new: nobody else holds it
        self.leases.start()
        try:
            backend, self.coder_reason = await connect_backend(
                settings.coder_url,
                settings.coder_session_token.get_secret_value(),
                api=settings.coder_api,
                organization_id=settings.coder_organization_id,
                observer=TracedCoderCalls(self.metrics),
                ai_sdk=ai_sdk_options(settings, DatabaseAiSdkStore(self.db)),
                spawn=self._coder_tasks.spawn,
                reconnect=self._reconnect_policy(),
            )
        except CoderModelUnknown as exc:
            raise StartupError(f"BRIDGE_CODER_MODEL is invalid: {exc}") from None
        self._backend = backend
        log.info("Coder at %s: %s", settings.coder_url, self.coder_reason)
        # One connection pool for every Slack call: without it slack-sdk opens (and closes) a new HTTP
        # session, so a new TCP connection, for each call, which cost most of the relay's CPU.
        self._http = http = aiohttp.ClientSession()
        # Every workspace's budgets: each Slack call draws on those of the workspace it is made for.
        self.limits = limits = WorkspaceLimits(
            home="",
            created=self._share_budgets,
            scale=settings.slack_rate_scale,
            adaptive_maximum=settings.slack_post_rate_max,
            observer=self.metrics,
        )
        tokens: BotTokens
        default: BotInstall | None = None
        own: BotInstall | None = None
        if bot_token is None:
            self._oauth = oauth = self._distribution(http)
            # No workspace of its own: each act's installation (its token, its bot) is looked up.
            identity = SlackIdentity(team_id=None, bot_user_id="", bot_id="", scopes=frozenset())
            tokens = oauth.bots
            installed = await oauth.installations.count()
            log.info("Slack: installed through OAuth into %d workspaces", installed)
        else:
            identity = await slack_identity(
                AsyncWebClient(token=bot_token, base_url=settings.slack_api_url, session=http), limits
            )
            log.info("Slack: bot user %s in %s", identity.bot_user_id, identity.serves)
            own = identity.install(bot_token)
            tokens = SingleInstall(own)
            # An org-wide install serves several workspaces: a call made outside any act is then a bug.
            default = own if own.key.team_id else None
        limits.settle(identity.home)
        self._slack_ok = True
        # Who the bot is and which token it sends, per workspace: one cache for the Slack calls and
        # the relay's questions (outside any act: the one installation of SLACK_BOT_TOKEN, if any).
        bots = Bots(tokens, default=own)
        client = RoutedClient(bots, default=default, base_url=settings.slack_api_url, session=http)
        self.budgets = SharedBudgets(
            self.db,
            limits,
            replica_id=self.replica_id,
            team_id=identity.home,
            interval=settings.replica_heartbeat,
        )
        await self.budgets.start()
        self._observe_budgets(limits, self.budgets)

        web_poster = WebPoster(client, self.metrics)
        self._sessions = sessions = SessionMirror(
            WebSessions(client, self.metrics), limits, enabled=settings.agent_sessions == "auto"
        )
        poster: SlackPoster = web_poster
        if settings.native_streaming:
            poster = StreamingPoster(
                web_poster,
                client,
                self.metrics,
                limits,
                recipient=self._recipient_of(identity.home),
                session_status=sessions.status_of,
            )
        self._files = files = SlackFileSource(
            hosts=settings.file_hosts,
            max_bytes=settings.max_file_bytes,
            timeout=settings.file_timeout,
            client=client,
            metrics=self.metrics,
            limits=limits,
        )
        self._outbox = Outbox(
            self.db,
            poster,
            limits=limits,
            leases=self.leases,
            edit_interval=settings.edit_interval,
            observer=self.metrics,
        )
        self.metrics.watch(
            budgets=limits.team_budgets, pending=self._outbox.pending, longest_wait=self._outbox.longest_wait
        )
        self._identity = accounts = self._build_identity(backend, self._outbox)
        directory = WebDirectory(client, self.metrics, limits, ttl=settings.directory_ttl)
        policy = Policy(self._rules(identity), directory, bots)
        self._home = Home(
            self.db,
            accounts,
            policy,
            home_tab.WebHomeTab(client, self.metrics),
            limits,
            workspace_url=identity.url,
            how_to=HowTo(interrupt=settings.reaction_interrupt, archive=settings.reaction_archive),
            debounce=settings.home_debounce,
            leases=self.leases,
            installation=identity.key,
        )
        reactions = ReactionNames(
            working=settings.reaction_working,
            done=settings.reaction_done,
            failed=settings.reaction_failed,
            queued=settings.reaction_queued,
        )
        headers = Headers(accounts, self._outbox, sessions)
        self._agent_files = agent_files = AgentFiles(
            self.db,
            accounts,
            self._outbox,
            WebUploads(client, http, self.metrics, limits),
            max_bytes=settings.agent_file_max_bytes,
        )
        self._supervisor = Supervisor(
            self.db,
            self.leases,
            accounts,
            self._outbox,
            headers,
            retry_interval=settings.stream_retry_interval,
            show_reasoning=settings.show_reasoning,
            compact=settings.thread_style == "compact",
            slow_start=settings.slow_start_after,
            reactions=reactions,
            sessions=sessions,
            table_blocks=not settings.native_streaming,
            cost_footer=settings.cost_footer,
            files=agent_files,
        )
        history = ThreadReader(client, self.metrics, limits)
        adoption = Adoption(self.db, self._outbox, headers, self._supervisor, history)
        pickup = Pickup(self.db, adoption, accounts, policy, installation=identity.key, bots=bots)
        self._watcher = Watcher(
            self.db,
            backend,
            self._outbox,
            self._supervisor,
            headers,
            leases=self.leases,
            home=self._home,
            pickup=pickup,
            summaries=self._supervisor.summaries,
            retry_after=settings.watch_retry_after,
        )
        intake = await open_intake(self.db, settings, schema_before, self.leases)
        self._inbound = Inbound(
            self.db,
            accounts,
            policy,
            self._outbox,
            self._supervisor,
            headers,
            intake,
            files=files,
            history=history,
            bots=bots,
            organization_id=settings.coder_organization_id,
            context=ContextLimits(
                settings.thread_context_messages if settings.thread_context else 0,
                settings.thread_context_chars,
            ),
            leases=self.leases,
        )
        self._controls = Controls(
            self.db,
            accounts,
            policy,
            self._outbox,
            self._supervisor,
            headers,
            intake,
            emoji={
                settings.reaction_interrupt: Control.INTERRUPT,
                settings.reaction_archive: Control.ARCHIVE,
                settings.reaction_promote: Control.PROMOTE,
            },
            home=self._home,
        )
        self._renames = Renames(
            self.db,
            accounts,
            policy,
            headers,
            sessions,
            intake,
            bots=bots,
            home=self._home,
            leases=self.leases,
        )
        bolt = ObservedApp(
            metrics=self.metrics,
            client=AsyncWebClient(base_url=settings.slack_api_url, session=http),
            authorize=BotAuthorize(tokens),  # uncached: an uninstalled workspace is refused at once
            oauth_flow=self._oauth.flow if self._oauth is not None else None,
            signing_secret=(
                settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
            ),
            request_verification_enabled=not settings.socket_mode,
            process_before_response=False,
            logger=_bolt_logger(),
        )
        bolt.use(act_for_request)
        events.register(bolt, intake, self._inbound, self._controls, self.metrics, renames=self._renames)
        if self._oauth is not None:
            register_uninstalls(bolt, self._oauth.store)
        shortcuts.register(bolt, self._controls)
        chats = ChatCommands(
            self.db,
            accounts,
            policy,
            self._outbox,
            self._inbound,
            self._controls,
            adoption,
            workspace_url=identity.url,
        )
        home_tab.register(bolt, self._home, self.metrics)
        commands.register(
            bolt,
            commands.Router(),
            commands.IdentityCommands(accounts, policy, limits, self.metrics, coder_url=settings.coder_url),
            chats,
        )
        undelivered = await self._outbox.resume()
        if undelivered:
            log.info("delivering texts of %d threads stored before the last stop", undelivered)
        resumed = await self._supervisor.resume()
        if await agent_files.resume():
            log.info("posting the agent's files recorded before the last stop")
        self._watcher.start()
        # Handed over before new events are taken, so a thread's older event keeps its place.
        replay = partial(events.recover, intake, self._inbound, self._controls, renames=self._renames)
        replayed = await replay()
        if replayed:
            log.info("handling %d Slack events acknowledged before the last stop", replayed)
        self.leases.look_for_work(Takeover(self.db, self._supervisor, self._outbox, replay).sweep)
        echoes = EchoFilter(
            settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else "",
            bot_user_id=identity.bot_user_id,
            bot_id=identity.bot_id,
        )
        await self._serve_http(bolt, echoes)
        if settings.socket_mode:
            assert settings.slack_app_token is not None
            self._socket = AsyncSocketModeHandler(bolt, settings.slack_app_token.get_secret_value())
            await self._socket.connect_async()  # type: ignore[no-untyped-call]
        self._accepting = True
        log.info(
            "bridge ready on port %s (%s mode, replica %s); following %d busy chats again",
            self.port,
            "Socket" if settings.socket_mode else "HTTP",
            self.replica_id,
            resumed,
        )

    def _distribution(self, http: aiohttp.ClientSession) -> _Distribution:
        """The installations on the database and the OAuth flow that adds to them (``SLACK_CLIENT_ID``)."""
        settings = self.settings
        assert settings.slack_client_id is not None
        assert settings.slack_client_secret is not None
        assert settings.encryption_key is not None
        secret = settings.slack_client_secret.get_secret_value()
        client = AsyncWebClient(base_url=settings.slack_api_url, session=http)
        installations = Installations(self.db, TokenCipher(encryption_keys(settings.encryption_key)))
        store = DatabaseInstallationStore(installations)
        flow = oauth_flow(
            client=client,
            client_id=settings.slack_client_id,
            client_secret=secret,
            scopes=settings.slack_scopes or tuple(REQUIRED_SCOPES),
            redirect_uri=settings.slack_redirect_uri,
            installations=store,
            states=DatabaseStateStore(OAuthStates(self.db, expiration_seconds=OAUTH_STATE_SECONDS)),
            state_expiration_seconds=OAUTH_STATE_SECONDS,
        )
        rotator = AsyncTokenRotator(client_id=settings.slack_client_id, client_secret=secret, client=client)
        return _Distribution(installations, store, InstalledBots(installations, rotator), flow)

    def _share_budgets(self, team: str, limits: SlackLimits) -> None:
        """A workspace was acted in for the first time: share its budgets with the other replicas."""
        assert self.budgets is not None
        budgets = SharedBudgets(
            self.db,
            limits,
            replica_id=self.replica_id,
            team_id=team,
            interval=self.settings.replica_heartbeat,
            home=self.budgets.team_id,
        )
        self._other_budgets.append(budgets)
        self._budget_tasks.spawn(f"budgets:{team}", budgets.start())

    def _observe_budgets(self, limits: SlackLimits, budgets: SharedBudgets) -> None:
        """``/metrics`` reads the learned paces and the live replicas when it is scraped."""
        for method, pace in limits.paces.items():
            self.metrics.slack_pace.labels(method).set_function(partial(_learned_pace, pace))
            self.metrics.slack_pace_ceiling.labels(method).set_function(partial(_refused_pace, pace))
        self.metrics.replicas.set_function(lambda: budgets.replicas)

    def _build_identity(self, backend: CoderBackend, whisperer: Outbox) -> Identity:
        """Shared or linked identity; linked users' backends speak the generation detected at start."""
        settings = self.settings
        if settings.identity_mode == "shared":
            return Identity(self.db, backend, whisperer)
        assert settings.encryption_key is not None
        assert settings.coder_url is not None
        coder_url = settings.coder_url
        # The model was settled (and checked) at start: each person's backend asks for the same one.
        model = backend.model if isinstance(backend, AiSdkBackend) else settings.coder_model
        ai_sdk = replace(ai_sdk_options(settings, DatabaseAiSdkStore(self.db)), model=model)

        async def connect(token: str) -> CoderBackend:
            personal, _ = await connect_backend(
                coder_url,
                token,
                api=backend.generation,
                organization_id=settings.coder_organization_id,
                observer=TracedCoderCalls(self.metrics),
                ai_sdk=ai_sdk,
                spawn=self._coder_tasks.spawn,
                check_model=False,
                reconnect=self._reconnect_policy(),
            )
            return personal

        cipher = TokenCipher(encryption_keys(settings.encryption_key))
        throttle = LinkThrottle(self.db, attempts=settings.link_attempts, window=settings.link_attempt_window)
        return Identity(
            self.db, backend, whisperer, mode="linked", cipher=cipher, connect=connect, throttle=throttle
        )

    def _recipient_of(self, home: str) -> Callable[[str, str], Awaitable[tuple[str, str] | None]]:
        """Who a natively streamed reply in a thread is addressed to: the person who started its chat
        (Slack requires one recipient for streams in channels); the thread is in the workspace acted
        for."""

        async def recipient(channel: str, thread_ts: str) -> tuple[str, str] | None:
            workspace = acting()
            team_id = workspace.team_id if workspace is not None and workspace.team_id else home
            async with self.db.unit() as session:
                link = await repo.find_link_by_thread(
                    session, team_id=team_id, channel_id=channel, thread_ts=thread_ts
                )
            return (link.team_id, link.requester_user_id) if link is not None else None

        return recipient

    def _rules(self, identity: SlackIdentity) -> Rules:
        settings = self.settings
        return Rules(
            team_id=identity.team_id,
            enterprise_id=identity.enterprise_id,
            allowed_teams=frozenset(settings.allowed_teams),
            allowed_channels=frozenset(settings.allowed_channels),
            allowed_users=frozenset(settings.allowed_users),
            allow_guests=settings.allow_guests,
            allow_external=settings.allow_external_users,
            admins=frozenset(settings.admins),
            control=settings.control,
            linked=settings.identity_mode == "linked",
        )

    def _reconnect_policy(self) -> ReconnectPolicy:
        """How Coder sockets are resumed: the same for the bridge's backend and each person's."""
        return ReconnectPolicy(
            delays=Backoff(initial=0.5, cap=self.settings.reconnect_max_delay).delays,
            silence_timeout=self.settings.stream_silence_timeout,
        )

    @property
    def backend(self) -> CoderBackend | None:
        """The Coder backend, once started (its ``capabilities`` say what this Coder can do)."""
        return self._backend

    async def _serve_http(self, bolt: AsyncApp, echoes: EchoFilter) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        if self.settings.metrics_port is None:
            app.router.add_get("/metrics", self._metrics)
        else:
            await self._serve_metrics()
        if self._oauth is not None:
            flow = self._oauth.flow

            async def install(request: web.Request) -> web.Response:
                return await to_aiohttp_response(
                    await flow.handle_installation(await to_bolt_request(request))
                )

            async def redirected(request: web.Request) -> web.Response:
                return await to_aiohttp_response(await flow.handle_callback(await to_bolt_request(request)))

            app.router.add_get(INSTALL_PATH, install)
            app.router.add_get(REDIRECT_PATH, redirected)
        if not self.settings.socket_mode:

            async def slack_events(request: web.Request) -> web.Response:
                if not self._accepting:
                    return web.json_response({"error": "shutting down"}, status=503)
                if not signing.well_formed(request.headers):
                    return web.json_response(signing.REFUSAL, status=401)
                if echoes.is_echo(await request.read(), request.headers):
                    return web.Response()
                return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

            app.router.add_post("/slack/events", slack_events)
        self.port = await self._listen(app, self.settings.host, self.settings.port)

    async def _serve_metrics(self) -> None:
        """``/metrics`` on its own listener (``BRIDGE_METRICS_PORT``), kept off the public one."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        assert self.settings.metrics_port is not None
        self.metrics_port = await self._listen(app, self.settings.metrics_host, self.settings.metrics_port)

    async def _listen(self, app: web.Application, host: str, port: int) -> int:
        """Serve ``app`` on ``host:port``; the port it listens on (the real one for port 0)."""
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self._runners.append(runner)
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        return int(runner.addresses[0][1])

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _: web.Request) -> web.Response:
        reasons: list[str] = []
        try:
            await asyncio.wait_for(self.db.ping(), 5)
        except Exception as exc:
            reasons.append(f"database: {type(exc).__name__}")
        if not self._slack_ok:
            reasons.append("slack: not connected")
        if self._socket is not None and not await self._socket.client.is_connected():
            reasons.append("slack: socket mode disconnected")
        if self._backend is None:
            reasons.append("coder: not connected")
        if not self._accepting:
            reasons.append("bridge: not accepting events")
        if reasons:
            return web.json_response({"status": "unavailable", "reasons": reasons}, status=503)
        return web.json_response({"status": "ready", "coder": self.coder_reason})

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), content_type="text/plain", charset="utf-8")

    async def stop(self) -> None:
        """Stop intake, finish in-flight work within ``BRIDGE_SHUTDOWN_TIMEOUT``, close everything.

        Slack events that arrive from now on are refused (503), so Slack retries them later; events
        acknowledged but not handled in time stay recorded and are handled at the next start. Streams
        close before the outbox drains: their final texts are stored with the cursor already, and
        the rest is progress that the next start rebuilds from the stream.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.shutdown_timeout

        def left(share: float = 1.0) -> float:
            return max(0.0, (deadline - loop.time()) * share)

        self._accepting = False
        self.leases.stopping()
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
        if self._watcher is not None:  # Coder's side of intake: nothing new is started after this
            await self._watcher.close()
        if self._home is not None:
            await self._home.close()
        if self._inbound is not None and not await self._inbound.drain(left(0.5)):
            log.warning("shutdown: cancelling Slack messages still being relayed (handled at the next start)")
            await self._inbound.close()
        if self._controls is not None and not await self._controls.drain(left(0.5)):
            await self._controls.close()
        if self._renames is not None and not await self._renames.drain(left(0.5)):
            await self._renames.close()
        if self._supervisor is not None:
            await self._supervisor.close()
        if self._agent_files is not None:
            await self._agent_files.close()
        if self._outbox is not None and not await self._outbox.drain(left()):
            log.warning(
                "shutdown: %d Slack updates not sent yet (final texts are stored and go out at the next "
                "start; progress is rebuilt from the stream)",
                self._outbox.pending(),
            )
        if self._outbox is not None:
            await self._outbox.close()
        if self._sessions is not None:
            if not await self._sessions.drain(left()):
                log.warning("shutdown: some agent session statuses were not sent to Slack")
            await self._sessions.close()
        await self._budget_tasks.cancel()
        for budgets in self._other_budgets:  # after the last Slack call: what it taught is stored
            await budgets.close()
        if self.budgets is not None:
            await self.budgets.close()
        for runner in self._runners:
            await runner.cleanup()
        if self._identity is not None:
            await self._identity.aclose()
        if self._backend is not None:
            await self._backend.aclose()
        if self._files is not None:
            await self._files.aclose()
        if self._http is not None:
            await self._http.close()
        await self.leases.close()  # last: other replicas take over what is left at once
        await self.db.dispose()
        if self._traces is not None:
            await tracing.disable(self._traces)
        self._sole.release()
        log.info("bridge stopped")
