"""SQLite serves one bridge: a second ``bridge serve`` on the same database file is refused at start.

SQLite has no leases (``relay.leases`` treats its one replica as holding everything), so two bridges
on one file would both follow every chat and post every reply twice. An exclusive lock on a file
beside the database says the file is served: the operating system drops it with the process,
also one killed with SIGKILL, so a restart after a crash is never refused.
"""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import IO

from sqlalchemy.engine import make_url


class AlreadyServed(Exception):
    """Another bridge serves this SQLite database; the message says so in one line."""


class SoleServer:
    """Holds the "served" lock of a SQLite database file while the bridge runs."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        database = parsed.database if parsed.get_backend_name() == "sqlite" else None
        self._database = database
        self._path = Path(f"{database}.serve-lock") if database and database != ":memory:" else None
        self._file: IO[str] | None = None

    def claim(self) -> None:
        """Take the lock, or raise ``AlreadyServed`` when another bridge holds it."""
        if self._path is None or self._file is not None:
            return
        file = self._path.open("a")
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            raise AlreadyServed(
                f"another bridge already serves the SQLite database {self._database}; "
                "SQLite takes one replica: use PostgreSQL (DATABASE_URL=postgresql://…) to run several"
            ) from None
        self._file = file

    def release(self) -> None:
        """Let the lock go (the bridge stopped)."""
        if self._file is not None:
            self._file.close()
            self._file = None
