"""Which chats are followed: one ``ChatFollow`` per chat that has work to show, started, woken,
resumed and stopped here and nowhere else.

Everything a chat's stream decides lives in its ``ChatFollow`` (``relay.follow``); the supervisor
only keeps the map from chat to follow and the task groups their runs (and their clocks) belong to,
so stopping the bridge cancels them all. The inbound side reaches it as ``links.Follows``, handed in
by ``app``, never by importing this module. With several replicas on one database a chat is
followed where its thread's lease is held (``relay.leases``): a run starts only once this replica
has it, and is cancelled when the lease is lost.

A follow stays in the map while its run is under way, and after it while a turn it showed still
waits for its Slack message to be recorded (``ChatFollow.unmarked``), so that message still gets
its reaction when the send's answer comes after the stream's.
"""

from __future__ import annotations

import logging

from bridge.coder.types import ChatId, ChatStatus
from bridge.db import repo
from bridge.db.engine import Database
from bridge.relay.agent_files import AgentFiles
from bridge.relay.follow import ChatFollow, Shared
from bridge.relay.identity import Identity
from bridge.relay.leases import Lease, LeaseLost, Leases, thread_lease
from bridge.relay.links import Headers
from bridge.relay.marks import ReactionNames
from bridge.relay.outbox import Outbox
from bridge.relay.sessions import SessionMirror
from bridge.relay.summaries import TurnSummaries
from bridge.tasks import TaskGroup

log = logging.getLogger(__name__)


class Supervisor:
    """Makes sure exactly one run follows each chat that has work to show."""

    def __init__(
        self,
        db: Database,
        leases: Leases,
        identity: Identity,
        outbox: Outbox,
        headers: Headers,
        *,
        retry_interval: float = 60.0,
        show_reasoning: bool = False,
        compact: bool = False,
        slow_start: float = 10.0,
        reactions: ReactionNames | None = None,
        sessions: SessionMirror | None = None,
        table_blocks: bool = False,
        cost_footer: bool = False,
        files: AgentFiles | None = None,
    ) -> None:
        self._db = db
        self._clocks = TaskGroup("clocks")
        self._shared = Shared(
            db=db,
            leases=leases,
            identity=identity,
            outbox=outbox,
            headers=headers,
            clocks=self._clocks,
            reactions=reactions or ReactionNames(),
            sessions=sessions,
            retry_interval=retry_interval,
            show_reasoning=show_reasoning,
            compact=compact,
            slow_start=slow_start,
            table_blocks=table_blocks,
            summaries=TurnSummaries(),
            cost_footer=cost_footer,
            files=files,
        )
        self._follows: dict[ChatId, ChatFollow] = {}
        self._tasks = TaskGroup("streams")

    @property
    def summaries(self) -> TurnSummaries:
        """Coder's turn summaries met with the completion lines of the chats followed here."""
        return self._shared.summaries

    @property
    def live(self) -> int:
        """Chats currently followed."""
        return sum(1 for follow in self._follows.values() if follow.running)

    async def resume(self) -> int:
        """Follow again every chat that was busy when the bridge last stopped; returns how many."""
        async with self._db.unit() as session:
            links = await repo.find_links_to_follow(session)
        for link in links:
            assert link.chat_id is not None
            self.follow(ChatId(link.chat_id))
        return len(links)

    def follow(self, chat_id: ChatId) -> None:
        """Ensure the chat is followed; if its run is about to stop, it runs once more."""
        follow = self._follows.get(chat_id)
        if follow is None:
            follow = self._follows[chat_id] = ChatFollow(chat_id, self._shared)
        if follow.want():
            self._tasks.spawn(chat_id, self._run(follow))

    def wake(self, chat_id: ChatId) -> None:
        """Coder says the chat has work (e.g. someone continued it in Coder's UI): follow it, unless a
        stream that will report that work is already open or opening."""
        follow = self._follows.get(chat_id)
        if follow is not None and follow.reporting:
            return
        self.follow(chat_id)

    def stopping(self, chat_id: ChatId) -> None:
        """A person is about to interrupt this chat: the turn under way will be reported as stopped."""
        follow = self._follows.get(chat_id)
        if follow is not None:
            follow.stopping()

    async def agent_changed(self, parent_id: ChatId, child_id: ChatId, status: ChatStatus) -> None:
        """The watch says a sub-agent's status: the card of the chat that spawned it shows it."""
        follow = self._follows.get(parent_id)
        if follow is not None:
            await follow.agent_changed(child_id, status)

    def answering(self, chat_id: ChatId, call_id: str, user_id: str) -> None:
        """A person in Slack is answering the chat's question (tool call ``call_id``): the follow that
        shows the answer (the one under way, or the one the answer starts) names them."""
        follow = self._follows.get(chat_id) or ChatFollow(chat_id, self._shared)  # a new one only records
        follow.answering(call_id, user_id)

    async def queue_changed(self, chat_id: ChatId) -> None:
        """A follow-up was recorded as queued: its notice and reaction show its place, if the chat is
        followed (else following it starts with the queue)."""
        follow = self._follows.get(chat_id)
        if follow is not None:
            await follow.queue_changed()

    async def recorded(self, chat_id: ChatId, coder_message_id: int) -> None:
        """A follow-up was recorded as delivered: the turn it started gets its reaction, also when the
        stream showed that turn before Coder's answer to the send came."""
        follow = self._follows.get(chat_id)
        if follow is not None:
            await follow.recorded(coder_message_id)
            self._forget(follow)

    async def close(self) -> None:
        """Stop following every chat (cursors are saved after every batch already)."""
        for follow in self._follows.values():
            follow.stop()
        await self._tasks.cancel()
        await self._clocks.cancel()

    async def _run(self, follow: ChatFollow) -> None:
        try:
            lease = await self._lease(follow.chat_id)
            if lease is None:
                follow.elsewhere()
                return
            try:
                with lease.guarding():
                    await follow.run(lease)
            except LeaseLost:
                log.info("chat %s is followed by another replica now", follow.chat_id)
            finally:
                await self._shared.leases.release(lease)
        finally:
            self._forget(follow)

    async def _lease(self, chat_id: ChatId) -> Lease | None:
        """The lease of the chat's thread, or None when another replica holds it (or no thread is
        linked to the chat)."""
        async with self._db.unit() as session:
            link = await repo.find_link_by_chat(session, chat_id)
        if link is None or link.id is None:
            log.warning("not following chat %s: no Slack thread is linked to it", chat_id)
            return None
        return await self._shared.leases.acquire(thread_lease(link.id))

    def _forget(self, follow: ChatFollow) -> None:
        """Drop a follow that has nothing left to do: no run, no turn waiting for its message."""
        if not follow.running and not follow.unmarked and self._follows.get(follow.chat_id) is follow:
            del self._follows[follow.chat_id]
