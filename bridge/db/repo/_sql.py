"""The statements every table's queries share: the dialect's INSERT and the claim built on it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def insert(session: AsyncSession, model: type[Any]) -> Any:
    """The dialect's INSERT, which (unlike the generic one) has ON CONFLICT clauses."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


async def insert_ignore(session: AsyncSession, model: type[Any], values: Mapping[str, Any]) -> bool:
    """Insert unless a unique constraint says the row exists; True when this call inserted it."""
    stmt = insert(session, model).values(**values).on_conflict_do_nothing()
    result = await session.execute(stmt)
    return bool(getattr(result, "rowcount", 0) == 1)
