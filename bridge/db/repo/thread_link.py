"""Table ``thread_link``: which Slack thread follows which Coder chat, and what the relay remembers
of it (the chat's phase, the title and diff the thread shows, sends begun).

A thread is claimed before its chat exists, so a second mention or a retried event finds the claim
instead of creating a second chat; the phase says which chats to follow again after a restart.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bridge.db.models import OutboxEntry, OutboxReaction, SlackMessage, ThreadLink, utcnow
from bridge.db.repo._sql import insert_ignore
from bridge.db.repo.outbox_text import OUTBOX_PENDING

STARTING_PHASE = "starting"  # claimed, the chat being created or waiting for a worker
BUSY_PHASES = (STARTING_PHASE, "working")
WAITING_PHASE = "needs_user"  # the agent waits for its person mid-turn (the chat is followed on)
FOLLOWED_PHASES = (*BUSY_PHASES, WAITING_PHASE)
FAILED_PHASE = "failed"


async def claim_thread(
    session: AsyncSession,
    *,
    team_id: str,
    channel_id: str,
    thread_ts: str,
    requester_user_id: str,
    enterprise_id: str | None = None,
) -> ThreadLink | None:
    """Claim a thread for a new chat; None when the thread is already linked (or being linked)."""
    now = utcnow()
    inserted = await insert_ignore(
        session,
        ThreadLink,
        {
            "team_id": team_id,
            "enterprise_id": enterprise_id,
            "channel_id": channel_id,
            "thread_ts": thread_ts,
            "requester_user_id": requester_user_id,
            "status": "",
            "phase": STARTING_PHASE,
            "archived": False,
            "created_at": now,
            "updated_at": now,
        },
    )
    if not inserted:
        return None
    return await find_link_by_thread(session, team_id=team_id, channel_id=channel_id, thread_ts=thread_ts)


async def reclaim_thread(session: AsyncSession, link_id: int, *, requester_user_id: str) -> ThreadLink | None:
    """Claim a thread whose chat failed to start for another attempt, whose author becomes its
    requester; None when another attempt claimed it first."""
    result = await session.execute(
        update(ThreadLink)
        .where(
            col(ThreadLink.id) == link_id,
            col(ThreadLink.chat_id).is_(None),
            col(ThreadLink.phase) == FAILED_PHASE,
        )
        .values(requester_user_id=requester_user_id, phase=STARTING_PHASE, updated_at=utcnow())
    )
    if getattr(result, "rowcount", 0) != 1:
        return None
    return await session.get(ThreadLink, link_id, populate_existing=True)


async def find_link(session: AsyncSession, link_id: int) -> ThreadLink | None:
    """A link by primary key, if it exists."""
    return await session.get(ThreadLink, link_id)


async def find_link_by_thread(
    session: AsyncSession, *, team_id: str, channel_id: str, thread_ts: str
) -> ThreadLink | None:
    """The link of a Slack thread, if any."""
    stmt = select(ThreadLink).where(
        col(ThreadLink.team_id) == team_id,
        col(ThreadLink.channel_id) == channel_id,
        col(ThreadLink.thread_ts) == thread_ts,
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def find_link_by_chat(session: AsyncSession, chat_id: str) -> ThreadLink | None:
    """The link of a Coder chat, if any."""
    stmt = select(ThreadLink).where(col(ThreadLink.chat_id) == chat_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def find_link_by_message(session: AsyncSession, *, channel_id: str, ts: str) -> ThreadLink | None:
    """The link a Slack message belongs to: a thread's first message, or a message the bot posted."""
    stmt = select(ThreadLink).where(col(ThreadLink.channel_id) == channel_id, col(ThreadLink.thread_ts) == ts)
    link = (await session.execute(stmt)).scalars().first()
    if link is not None:
        return link
    posted = (
        select(ThreadLink)
        .join(SlackMessage, col(SlackMessage.link_id) == col(ThreadLink.id))
        .where(col(ThreadLink.channel_id) == channel_id, col(SlackMessage.ts) == ts)
    )
    return (await session.execute(posted)).scalars().first()


_IN_CHUNK = 500  # ids per IN (…) list, well below SQLite's and PostgreSQL's bound-parameter limits


async def find_links_by_chat(session: AsyncSession, chat_ids: Sequence[str]) -> dict[str, ThreadLink]:
    """The links of those of ``chat_ids`` that have one, by chat id (archived ones left out)."""
    found: dict[str, ThreadLink] = {}
    for start in range(0, len(chat_ids), _IN_CHUNK):
        stmt = select(ThreadLink).where(
            col(ThreadLink.chat_id).in_(chat_ids[start : start + _IN_CHUNK]),
            col(ThreadLink.archived).is_(False),
        )
        for link in (await session.execute(stmt)).scalars():
            assert link.chat_id is not None
            found[link.chat_id] = link
    return found


async def find_links_of_requester(session: AsyncSession, user_id: str, *, limit: int) -> Sequence[ThreadLink]:
    """The chats a person started (those with a chat), open ones first, each group newest first."""
    stmt = (
        select(ThreadLink)
        .where(col(ThreadLink.requester_user_id) == user_id, col(ThreadLink.chat_id).is_not(None))
        .order_by(col(ThreadLink.archived), col(ThreadLink.created_at).desc(), col(ThreadLink.id).desc())
        .limit(limit)
    )
    return (await session.execute(stmt)).scalars().all()


async def find_links_to_follow(session: AsyncSession) -> Sequence[ThreadLink]:
    """Links whose chat was last seen busy, or waiting for its person in the middle of a turn: the
    chats to follow again after a restart."""
    stmt = select(ThreadLink).where(
        col(ThreadLink.chat_id).is_not(None),
        col(ThreadLink.archived).is_(False),
        col(ThreadLink.phase).in_(FOLLOWED_PHASES),
    )
    return (await session.execute(stmt)).scalars().all()


async def find_links_with_pending_output(session: AsyncSession) -> Sequence[ThreadLink]:
    """Threads with texts or reactions not yet shown in Slack (the outbox resumes them at start)."""
    texts = select(col(OutboxEntry.link_id)).where(col(OutboxEntry.state) == OUTBOX_PENDING)
    reactions = select(col(OutboxReaction.link_id))
    stmt = select(ThreadLink).where(col(ThreadLink.id).in_(texts) | col(ThreadLink.id).in_(reactions))
    return (await session.execute(stmt)).scalars().all()


async def attach_chat(session: AsyncSession, link_id: int, *, chat_id: str, status: str, phase: str) -> None:
    """Complete a claim with the chat Coder created for it."""
    await session.execute(
        update(ThreadLink)
        .where(col(ThreadLink.id) == link_id)
        .values(chat_id=chat_id, status=status, phase=phase, updated_at=utcnow())
    )


async def mark_failed(session: AsyncSession, link_id: int) -> None:
    """A claim whose chat could not be created: kept (its Slack replies stay linked), open to a retry."""
    await session.execute(
        update(ThreadLink)
        .where(col(ThreadLink.id) == link_id)
        .values(phase=FAILED_PHASE, updated_at=utcnow())
    )


async def set_status(
    session: AsyncSession, chat_id: str, *, status: str, phase: str, sends_seen: int | None = None
) -> None:
    """Remember a chat's last known status (drives which chats are followed after a restart). With
    ``sends_seen`` only while no other send began: a newer send's turn keeps the chat followed."""
    stmt = update(ThreadLink).where(col(ThreadLink.chat_id) == chat_id)
    if sends_seen is not None:
        stmt = stmt.where(col(ThreadLink.sends_begun) == sends_seen)
    await session.execute(stmt.values(status=status, phase=phase, updated_at=utcnow()))


async def mark_busy(session: AsyncSession, link_id: int) -> None:
    """A message is being sent to the link's chat: follow it again after a restart, even if the bridge
    stops before the chat's stream has shown it busy (the stream then records the real status)."""
    await session.execute(
        update(ThreadLink)
        .where(col(ThreadLink.id) == link_id)
        .values(phase=STARTING_PHASE, sends_begun=col(ThreadLink.sends_begun) + 1, updated_at=utcnow())
    )


async def save_shown_title(session: AsyncSession, chat_id: str, title: str) -> None:
    """Remember the chat title the thread's header was given."""
    await session.execute(
        update(ThreadLink).where(col(ThreadLink.chat_id) == chat_id).values(shown_title=title)
    )


async def choose_title(session: AsyncSession, link_id: int, title: str) -> None:
    """Remember the title a person chose for a thread where Coder keeps its own ("" forgets it)."""
    await session.execute(update(ThreadLink).where(col(ThreadLink.id) == link_id).values(chosen_title=title))


async def save_shown_diff(session: AsyncSession, chat_id: str, digest: str) -> None:
    """Remember (a digest of) the diff status the thread's PR summary was rendered from."""
    await session.execute(
        update(ThreadLink).where(col(ThreadLink.chat_id) == chat_id).values(shown_diff=digest)
    )


async def set_archived(session: AsyncSession, chat_id: str, archived: bool) -> None:
    """Remember that a chat was archived or unarchived."""
    await session.execute(
        update(ThreadLink)
        .where(col(ThreadLink.chat_id) == chat_id)
        .values(archived=archived, updated_at=utcnow())
    )
