"""Mirrors each chat's status and title onto its thread's Slack Agent Session (``BRIDGE_AGENT_SESSIONS``).

Slack shows a session's status where people look for their agents' work, and while it is
``processing`` a native Stop button (wired to the interrupt, see ``Controls.stop_session``). Coder's
phases map onto Slack's four statuses; the session's title follows the chat's, and a person's rename
in Slack is recorded here (``renamed``) so it is not sent back to Slack, or undone (``restore``) when
it does not stand (``relay.renames``).

Like the outbox, this keeps what *should* be shown and lets one worker make Slack match within the
method budgets of ``SlackLimits``: a thread's pending changes coalesce (the latest status wins), so a
busy workspace never queues stale statuses. A session status never clears by itself (reference
12.2), so nothing is dropped on a 429 or a hiccup; it is retried.

Slack refuses sessions where the app is not declared an agent (``not_authorized``) or the workspace
has no such methods; the first such answer switches the mirror off for good, with one log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from enum import StrEnum

from bridge.coder.types import ChatPhase
from bridge.relay.limits import SLACK_RETRY, SlackLimits
from bridge.relay.outbox import ThreadRef
from bridge.relay.ports import AgentSessions, SlackError, SlackPermanent, SlackRateLimited
from bridge.slack.workspaces import WorkspaceKey, acting_for
from bridge.tasks import TaskGroup

log = logging.getLogger(__name__)

MAX_TITLE = 200
REFUSALS = frozenset(
    {
        "not_authorized",
        "unknown_method",
        "feature_disabled",
        "feature_not_enabled",
        "method_deprecated",
        "missing_scope",
        "not_allowed_token_type",
        "not_allowed",
    }
)
"""Answers meaning this workspace or app has no Agent Sessions: stop asking."""
_MAX_FAILURES = 5


class SessionStatus(StrEnum):
    """Slack's session statuses (a closed enum: free text is refused)."""

    PROCESSING = "processing"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"


def session_status(phase: ChatPhase) -> SessionStatus | None:
    """What a chat phase looks like as a session: working, waiting for a person, open, or finished."""
    return {
        ChatPhase.STARTING: SessionStatus.PROCESSING,
        ChatPhase.WORKING: SessionStatus.PROCESSING,
        ChatPhase.NEEDS_USER: SessionStatus.SUSPENDED,
        ChatPhase.IDLE: SessionStatus.ACTIVE,
        ChatPhase.ERROR: SessionStatus.ACTIVE,
        ChatPhase.DONE: SessionStatus.CLOSED,
    }.get(phase)


def _title(title: str) -> str:
    title = " ".join(title.split())
    return title if len(title) <= MAX_TITLE else title[: MAX_TITLE - 1] + "…"


@dataclass
class _Session:
    channel: str
    thread_ts: str
    initiator: str
    status: SessionStatus
    title: str
    workspace: WorkspaceKey | None = None  # its thread's: its calls are made for it
    created: bool = False
    sent_status: SessionStatus | None = None
    sent_title: str = ""
    failures: int = 0


class SessionMirror:
    """Keeps the Agent Sessions of linked threads equal to their chats' status and title."""

    def __init__(self, sessions: AgentSessions, limits: SlackLimits, *, enabled: bool = True) -> None:
        self._port = sessions
        self._limits = limits
        self.enabled = enabled
        """False when configured off or once Slack refused sessions."""
        self._sessions: dict[tuple[str, str], _Session] = {}
        self._dirty: dict[tuple[str, str], None] = {}  # an ordered set: oldest change first
        self._wake = asyncio.Event()
        self._settled = asyncio.Event()  # set while Slack has been told everything
        self._settled.set()
        self._tasks = TaskGroup("sessions")

    def show(self, ref: ThreadRef, phase: ChatPhase, *, title: str, initiator: str) -> None:
        """The chat's phase changed: its session should say so (created with ``title`` if new)."""
        status = session_status(phase)
        if not self.enabled or status is None:
            return
        key = (ref.channel, ref.thread_ts)
        session = self._sessions.get(key)
        if session is None:
            session = self._sessions[key] = _Session(
                ref.channel, ref.thread_ts, initiator, status, _title(title), ref.workspace
            )
        session.status = status
        self._mark(key)

    def retitle(self, ref: ThreadRef, title: str) -> None:
        """The chat was renamed: so is its session (only one the bridge created; none is made for it)."""
        session = self._sessions.get((ref.channel, ref.thread_ts))
        if self.enabled and session is not None and title.strip():
            session.title = _title(title)
            self._mark((ref.channel, ref.thread_ts))

    def renamed(self, ref: ThreadRef, title: str) -> None:
        """A person renamed the thread's session in Slack, which shows ``title`` now: the bridge won't
        send it again (a session the bridge did not make is not its business)."""
        session = self._sessions.get((ref.channel, ref.thread_ts))
        if self.enabled and session is not None:
            session.sent_title = _title(title)

    def restore(self, ref: ThreadRef) -> None:
        """The title a person gave the session does not stand: the session gets its own back."""
        key = (ref.channel, ref.thread_ts)
        session = self._sessions.get(key)
        if self.enabled and session is not None and session.title != session.sent_title:
            self._mark(key)

    def title_of(self, channel: str, thread_ts: str) -> str | None:
        """The title the thread's session has as far as the bridge knows (it gave it, or saw a person
        give it), if the bridge made that session."""
        session = self._sessions.get((channel, thread_ts))
        return session.sent_title if self.enabled and session is not None and session.created else None

    def status_of(self, channel: str, thread_ts: str) -> str | None:
        """The status a thread's session should have (for a stopped stream to leave), if it has one."""
        session = self._sessions.get((channel, thread_ts))
        return session.status.value if self.enabled and session is not None and session.created else None

    async def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` until Slack has every status (a session left ``processing`` stays so
        for about an hour); True when nothing is left."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._settled.wait()
        return self._settled.is_set()

    async def close(self) -> None:
        """Stop the worker (statuses not sent yet are re-derived from the streams at the next start)."""
        await self._tasks.cancel()

    def _mark(self, key: tuple[str, str]) -> None:
        self._dirty[key] = None
        self._settled.clear()
        self._wake.set()
        if not len(self._tasks):
            self._tasks.spawn("worker", self._work())

    async def _work(self) -> None:
        while self.enabled:
            if not self._dirty:
                self._settled.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            key = next(iter(self._dirty))
            del self._dirty[key]
            session = self._sessions[key]
            with acting_for(session.workspace):  # one worker for every thread: each for its own
                await self._sync(key, session)
        self._dirty.clear()
        self._settled.set()

    async def _sync(self, key: tuple[str, str], session: _Session) -> None:
        try:
            if not session.created or session.status != session.sent_status:
                await self._limits.acquire("agents.sessions.setStatus", session.channel)
                status, title = session.status, session.title  # read after the wait: the latest wins
                await self._port.set_status(
                    session.channel,
                    session.thread_ts,
                    status.value,
                    title=None if session.created else title or None,
                    initiator=None if session.created else session.initiator,
                )
                if not session.created:
                    session.created, session.sent_title = True, title
                session.sent_status = status
            if session.title != session.sent_title:
                await self._limits.acquire("agents.sessions.rename", session.channel)
                title = session.title
                await self._port.rename(session.channel, session.thread_ts, title)
                session.sent_title = title
            session.failures = 0
        except SlackRateLimited as exc:
            await self._retry(key, exc.retry_after)
        except SlackPermanent as exc:
            if exc.code in REFUSALS:
                self._refused(exc)
                return
            log.info("agent session of thread %s not updated: %s", session.thread_ts, exc)
            session.sent_status, session.sent_title = session.status, session.title
        except SlackError as exc:
            session.failures += 1
            if session.failures < _MAX_FAILURES:
                await self._retry(key, SLACK_RETRY.delay(session.failures))
            else:
                log.warning("giving up on the agent session of thread %s: %s", session.thread_ts, exc)

    async def _retry(self, key: tuple[str, str], delay: float) -> None:
        await asyncio.sleep(delay)
        self._dirty.setdefault(key, None)

    def _refused(self, exc: SlackPermanent) -> None:
        self.enabled = False
        hint = (
            " (declare the app an agent: manifest.yml's agent_view)" if exc.code == "not_authorized" else ""
        )
        log.info(
            "Slack has no Agent Sessions for this app (%s: %s)%s; thread statuses stay in the thread only",
            exc.method,
            exc.code,
            hint,
        )
