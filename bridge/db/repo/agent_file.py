"""Table ``agent_file``: files the agent attached, and how far each got on its way into the thread."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bridge.db.models import AgentFile, utcnow
from bridge.db.repo._sql import insert_ignore

AGENT_FILE_PENDING = "pending"
AGENT_FILE_UPLOADING = "uploading"
AGENT_FILE_DONE = "done"


async def add_agent_file(
    session: AsyncSession, *, link_id: int, coder_file_id: str, name: str, media_type: str
) -> bool:
    """Record a file the agent attached; a file recorded before (a replayed message) is kept as it is.
    True when this call recorded it."""
    values = {
        "link_id": link_id,
        "coder_file_id": coder_file_id,
        "name": name,
        "media_type": media_type,
        "created_at": utcnow(),
    }
    return await insert_ignore(session, AgentFile, values)


async def find_unfinished_agent_files(
    session: AsyncSession, link_id: int | None = None
) -> Sequence[AgentFile]:
    """Files not yet in their thread (nor explained there), of one link or of all, oldest first."""
    stmt = select(AgentFile).where(col(AgentFile.state) != AGENT_FILE_DONE)
    if link_id is not None:
        stmt = stmt.where(col(AgentFile.link_id) == link_id)
    return (await session.execute(stmt.order_by(col(AgentFile.id)))).scalars().all()


async def set_agent_file_state(
    session: AsyncSession, file_id: int, state: str, *, slack_file_id: str = ""
) -> None:
    """Move a file on: uploading (with the upload's Slack file id), or done."""
    values: dict[str, str] = {"state": state}
    if slack_file_id:
        values["slack_file_id"] = slack_file_id
    await session.execute(update(AgentFile).where(col(AgentFile.id) == file_id).values(**values))
