"""Table ``lease``: who of several replicas on one PostgreSQL database does a piece of work.

PostgreSQL only (SQLite serves one replica, which holds everything): the statements use the
database's clock, ``now()``, so replicas whose clocks disagree still agree on when a lease expired.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_ACQUIRE = text(
    """
    WITH before AS (SELECT holder FROM lease WHERE name = :name)
    INSERT INTO lease (name, holder, epoch, wanted, expires_at)
    VALUES (:name, :holder, 1, false, now() + make_interval(secs => :seconds))
    ON CONFLICT (name) DO UPDATE SET
        holder = excluded.holder,
        epoch = CASE WHEN lease.holder = excluded.holder THEN lease.epoch ELSE lease.epoch + 1 END,
        wanted = false,
        expires_at = excluded.expires_at
    WHERE lease.holder = excluded.holder OR lease.expires_at < now()
    RETURNING epoch, COALESCE((SELECT holder FROM before), :holder) <> :holder AS inherited
    """
)


@dataclass(frozen=True)
class Acquired:
    """A lease just acquired: its fencing epoch, and whether another holder had it before."""

    epoch: int
    inherited: bool


async def acquire_lease(session: AsyncSession, name: str, holder: str, seconds: float) -> Acquired | None:
    """Take ``name`` for ``seconds`` if it is free, expired or ``holder``'s already; None when another
    replica holds it (it is then asked to hand it on when it lets go: ``wanted``)."""
    row = (await session.execute(_ACQUIRE, {"name": name, "holder": holder, "seconds": seconds})).first()
    if row is not None:
        return Acquired(int(row.epoch), bool(row.inherited))
    await session.execute(text("UPDATE lease SET wanted = true WHERE name = :name"), {"name": name})
    return None


async def renew_leases(
    session: AsyncSession, holder: str, names: Sequence[str], seconds: float
) -> dict[str, int]:
    """Extend the leases ``names`` that ``holder`` still holds; name -> epoch of each (the others
    were taken over). A lease its holder no longer knows of is not renewed: it expires."""
    result = await session.execute(
        text(
            "UPDATE lease SET expires_at = now() + make_interval(secs => :seconds) "
            "WHERE holder = :holder AND name = ANY(:names) RETURNING name, epoch"
        ),
        {"holder": holder, "names": list(names), "seconds": seconds},
    )
    return {str(name): int(epoch) for name, epoch in result.all()}


async def release_lease(session: AsyncSession, name: str, holder: str) -> None:
    """Let go of a lease: gone, or expired at once when another replica asked for it meanwhile, so
    the takeover (which finds expired leases) hands the work on."""
    params = {"name": name, "holder": holder}
    await session.execute(
        text("DELETE FROM lease WHERE name = :name AND holder = :holder AND NOT wanted"), params
    )
    await session.execute(
        text("UPDATE lease SET expires_at = now() WHERE name = :name AND holder = :holder"), params
    )


async def expire_leases(session: AsyncSession, holder: str) -> None:
    """Expire every lease of ``holder`` now (it stops): other replicas take the work over at once."""
    await session.execute(
        text("UPDATE lease SET expires_at = now() WHERE holder = :holder"), {"holder": holder}
    )


async def holds_lease(session: AsyncSession, name: str, holder: str, epoch: int) -> bool:
    """Whether ``holder`` still holds ``name`` at ``epoch``; the row stays locked (shared) until the
    transaction ends, so no takeover can commit before the caller's writes do."""
    row = await session.execute(
        text("SELECT 1 FROM lease WHERE name = :name AND holder = :holder AND epoch = :epoch FOR SHARE"),
        {"name": name, "holder": holder, "epoch": epoch},
    )
    return row.first() is not None


async def find_expired_leases(session: AsyncSession, prefix: str) -> list[str]:
    """Names starting with ``prefix`` whose holder let them expire: work to take over."""
    result = await session.execute(
        text("SELECT name FROM lease WHERE name LIKE :pattern AND expires_at < now() ORDER BY name"),
        {"pattern": f"{prefix}%"},
    )
    return [str(name) for name in result.scalars().all()]


async def find_unleased_output(session: AsyncSession, prefix: str) -> list[int]:
    """Links with texts or reactions waiting for Slack whose thread (lease ``prefix<link id>``) no
    replica holds: stored by a replica that did not hold it, after its holder let go."""
    result = await session.execute(
        text(
            """
            SELECT link_id FROM (
                SELECT link_id FROM outbox WHERE state = 'pending'
                UNION SELECT link_id FROM outbox_reaction
            ) AS waiting
            WHERE NOT EXISTS (
                SELECT 1 FROM lease WHERE name = :prefix || waiting.link_id AND expires_at >= now()
            )
            ORDER BY link_id
            """
        ),
        {"prefix": prefix},
    )
    return [int(link_id) for link_id in result.scalars().all()]
