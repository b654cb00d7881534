"""Apply Alembic migrations from inside the running program (``bridge serve`` and ``bridge migrate``).

The migration scripts ship inside the package (``bridge.migrations``, kept in the repository's
``migrations/`` folder), so an installed wheel can migrate without a checkout. On PostgreSQL an
advisory lock serialises replicas that start at the same moment; the loser then finds nothing to do.
"""

from __future__ import annotations

import asyncio
from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError

from bridge.db.engine import Database

_LOCK_KEY = 0x5C0DE_B81D6E  # arbitrary but fixed: every replica must contend for the same lock


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migration scripts."""
    config = Config()
    config.set_main_option("script_location", str(files("bridge.migrations")))
    return config


def _upgrade(connection: Connection, revision: str) -> str | None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    before = MigrationContext.configure(connection).get_current_revision()
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)
    return before


async def upgrade(db: Database, revision: str = "head") -> str | None:
    """Bring the schema to ``revision`` (idempotent); the revision it was at (None: a new database),
    so the process that applied a migration can finish what only it may (``Intake.adopt``).

    SQLite has no advisory locks: two processes starting at once may both try to create a table;
    the loser fails, and simply running again finds the schema current.
    """
    attempts = 5 if db.is_sqlite else 1
    for attempt in range(1, attempts + 1):
        try:
            async with db.engine.begin() as conn:
                return await conn.run_sync(_upgrade, revision)
        except OperationalError:
            if attempt == attempts:
                raise
            await asyncio.sleep(0.2 * attempt)
    raise AssertionError("unreachable: the last attempt returns or raises")
