"""The App Home tab: each person's chats, republished when one of them changes.

A person's Home shows the chats they started (the links whose requester they are), read from the
bridge's table, with each chat's title, status and pull request as Coder reports them now (with
the person's own token in linked mode; what the table last saw when Coder can't be asked). Someone
the access policy refuses (asked at every publish) sees its reason instead, and Coder is not asked.

It is published when the person opens the tab, and again whenever one of their chats changes
while they have it (the chat watch and the controls call ``changed``): no polling. Changes are
debounced per person (a turn's statuses and a title change in quick succession cost one publish),
and every publish waits for a token of the workspace's ``views.publish`` budget. Only people who
opened the tab since the bridge started are kept current; everyone else gets a fresh view when
they open it, which is the only time it can be seen. Replicas on PostgreSQL record who opened it
(``home_viewer``), as the chat watch runs on one replica only: that one keeps current the tabs
opened on any replica within ``VIEWERS_KEPT``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta

from bridge.coder.backend import CoderBackend
from bridge.coder.errors import CoderError
from bridge.coder.types import Chat, ChatId, ChatPhase, ChatStatus
from bridge.db import repo
from bridge.db.engine import Database
from bridge.db.models import ThreadLink, utcnow
from bridge.relay.identity import Identity
from bridge.relay.leases import Leases
from bridge.relay.limits import SlackLimits
from bridge.relay.policy import Act, Policy
from bridge.relay.ports import HomeTab, SlackError, SlackPermanent, SlackRateLimited
from bridge.slack.home_view import MAX_CHATS, HomeChat, HowTo, render_home
from bridge.slack.workspaces import WorkspaceKey, act_for, acting
from bridge.tasks import TaskGroup

log = logging.getLogger(__name__)

_TRIES = 3
VIEWERS_KEPT = timedelta(days=1)
"""How long a tab opened on another replica is kept current."""


def permalink(workspace_url: str, link: ThreadLink) -> str:
    """A thread's permalink as Slack builds it (``…/archives/C123/p1732360000000100``): no API call.
    Without the workspace's address (installed through OAuth, Slack's answer names none), the web
    client's address of the thread in its team, which Slack opens in the app as well."""
    channel, ts = link.channel_id, link.thread_ts
    if not workspace_url:
        return f"https://app.slack.com/client/{link.team_id}/{channel}/thread/{channel}-{ts}"
    return f"{workspace_url.rstrip('/')}/archives/{channel}/p{ts.replace('.', '')}"


class Home:
    """Keeps the Home tabs of the people who opened one current."""

    def __init__(
        self,
        db: Database,
        identity: Identity,
        policy: Policy,
        tab: HomeTab,
        limits: SlackLimits,
        *,
        workspace_url: str,
        how_to: HowTo,
        debounce: float = 2.0,
        leases: Leases | None = None,
        installation: WorkspaceKey | None = None,
    ) -> None:
        self._db = db
        self._installation = installation
        """Acted for when publishing the tab of someone whose workspace is unknown (the tab was
        opened on another replica or before a restart): the installation itself, which an org-wide
        install's token serves as the org."""
        self._workspaces: dict[str, WorkspaceKey] = {}
        """Where each person last opened the tab: their tab is published for that workspace."""
        self._identity = identity
        self._policy = policy
        self._tab = tab
        self._limits = limits
        self._workspace_url = workspace_url
        self._how_to = how_to
        self._debounce = debounce
        self._shared = leases is not None and leases.shared
        self._viewers: set[str] = set()
        self._publishing: set[str] = set()
        self._stale: set[str] = set()
        self._enabled = True
        self._tasks = TaskGroup("home")

    def opened(self, user_id: str) -> None:
        """The person opened the Home tab: publish it now, and keep it current from here on."""
        self._viewers.add(user_id)
        workspace = acting()
        if workspace is not None:
            self._workspaces[user_id] = workspace
        if self._shared:  # the replica watching Coder keeps it current too
            self._tasks.spawn(f"viewer:{user_id}", self._note_viewer(user_id))
        self._schedule(user_id, 0.0)

    def changed(self, user_id: str) -> None:
        """One of the person's chats changed: republish their Home, if they have one, after the debounce."""
        if user_id in self._viewers:
            self._schedule(user_id, self._debounce)
        elif self._shared:
            self._tasks.spawn(f"viewer?:{user_id}", self._if_viewer(user_id))

    async def _note_viewer(self, user_id: str) -> None:
        async with self._db.unit() as session:
            await repo.note_home_viewer(session, user_id)

    async def _if_viewer(self, user_id: str) -> None:
        """Republish the person's tab if they opened it on another replica lately."""
        async with self._db.unit() as session:
            viewing = await repo.is_home_viewer(session, user_id, utcnow() - VIEWERS_KEPT)
        if viewing:
            self._viewers.add(user_id)
            self._schedule(user_id, self._debounce)

    async def close(self) -> None:
        """Stop publishing (shutdown): a Home left stale is fixed the next time it is opened."""
        await self._tasks.cancel()

    def _schedule(self, user_id: str, delay: float) -> None:
        if not self._enabled:
            return
        if user_id in self._publishing:
            self._stale.add(user_id)  # the running task publishes once more
            return
        self._publishing.add(user_id)
        self._tasks.spawn(user_id, self._keep_current(user_id, delay))

    async def _keep_current(self, user_id: str, delay: float) -> None:
        """Publish after ``delay``; changes meanwhile are folded in, those during a publish cost one more."""
        act_for(self._workspaces.get(user_id, self._installation))
        try:
            while True:
                await asyncio.sleep(delay)
                self._stale.discard(user_id)
                await self._publish(user_id)
                if user_id not in self._stale:
                    return
                delay = self._debounce
        finally:
            self._publishing.discard(user_id)
            self._stale.discard(user_id)

    async def _publish(self, user_id: str) -> None:
        """One publish, within the budget; 429s and outages are tried again a few times, then logged."""
        refusal = await self._policy.refusal(user_id, Act.ACCOUNT)
        chats, older = await self._chats(user_id) if refusal is None else ([], 0)
        view = render_home(chats, self._how_to, older=older, refusal=refusal or "")
        failure: SlackError | None = None
        for attempt in range(_TRIES):
            if failure is not None:
                wait = failure.retry_after if isinstance(failure, SlackRateLimited) else 2.0**attempt
                await asyncio.sleep(wait)
            await self._limits.acquire("views.publish", "")
            try:
                await self._tab.publish(user_id, view)
                return
            except SlackPermanent as exc:
                self._refused(user_id, exc)
                return
            except SlackError as exc:
                failure = exc
        log.warning("gave up publishing the Home tab of %s: %s", user_id, failure)

    def _refused(self, user_id: str, exc: SlackPermanent) -> None:
        if exc.code != "not_enabled":
            log.warning("could not publish the Home tab of %s: %s", user_id, exc)
            return
        self._enabled = False
        log.warning(
            "Slack refused the App Home tab (not_enabled): set features.app_home.home_tab_enabled in the "
            "app's manifest; no Home tab is published until the bridge restarts"
        )

    async def _chats(self, user_id: str) -> tuple[list[HomeChat], int]:
        """The person's chats as shown, and how many older ones are left out."""
        async with self._db.unit() as session:
            links = list(await repo.find_links_of_requester(session, user_id, limit=MAX_CHATS + 1))
        older = max(0, len(links) - MAX_CHATS)
        links = links[:MAX_CHATS]
        backend = await self._identity.backend_for_link(links[0]) if links else None
        chats = await self._current(backend, links)
        return [self._entry(link, chats.get(link.chat_id or ""), backend) for link in links], older

    async def _current(self, backend: CoderBackend | None, links: Sequence[ThreadLink]) -> dict[str, Chat]:
        """Each chat as Coder reports it now; a chat Coder can't show is left out (the table stands in)."""
        if backend is None:
            return {}
        found = await asyncio.gather(
            *(backend.get_chat(ChatId(link.chat_id or "")) for link in links), return_exceptions=True
        )
        chats: dict[str, Chat] = {}
        for link, chat in zip(links, found, strict=True):
            if isinstance(chat, Chat):
                chats[chat.id] = chat
            elif isinstance(chat, CoderError):
                log.info("Home tab: chat %s not read from Coder: %s", link.chat_id, chat)
            else:
                raise chat
        return chats

    def _entry(self, link: ThreadLink, chat: Chat | None, backend: CoderBackend | None) -> HomeChat:
        assert link.chat_id is not None
        chat_id = ChatId(link.chat_id)
        coder_url = (backend or self._identity.shared).chat_url(chat_id)
        thread_url = permalink(self._workspace_url, link)
        if chat is None:
            title = link.chosen_title or link.shown_title
            return HomeChat(chat_id, title, _stored_status(link), link.archived, None, thread_url, coder_url)
        title = link.chosen_title or chat.title
        summary = chat.summary or chat.last_turn_summary
        return HomeChat(
            chat_id, title, chat.status, link.archived, chat.diff_status, thread_url, coder_url, summary
        )


def _stored_status(link: ThreadLink) -> ChatStatus | None:
    """The status the bridge last stored for a link, when Coder can't be asked."""
    if not link.status:
        return None
    try:
        phase = ChatPhase(link.phase)
    except ValueError:
        phase = ChatPhase.UNKNOWN
    return ChatStatus(phase=phase, name=link.status)
