"""Alembic environment: runs on a connection handed in by ``bridge.db.migrate``, or on DATABASE_URL.

The second path serves developers running ``alembic`` directly (``alembic revision --autogenerate``).
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy import Connection
from sqlmodel import SQLModel

import bridge.db.models  # noqa: F401 - registers the tables on SQLModel.metadata
from bridge.db.engine import Database

target_metadata = SQLModel.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_from_url() -> None:
    db = Database(os.environ.get("DATABASE_URL", "sqlite:///bridge.db"))
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(_run)
    finally:
        await db.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_from_url())
