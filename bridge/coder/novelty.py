"""Saying once that a newer Coder sent something this bridge does not know (an event type, a status).

A new type shows up in every event of every chat once a server upgrades; logging each would flood the
log, logging none would hide why something is not shown. So each is logged at INFO the first time in
a process and at DEBUG afterwards.
"""

from __future__ import annotations

import logging

_LIMIT = 64  # a server inventing names without end must not grow this set without end
_reported: set[str] = set()


def report_unknown(logger: logging.Logger, what: str, name: object) -> None:
    """Log that a ``what`` named ``name`` is skipped: once at INFO, later at DEBUG."""
    key = f"{what}:{name!r}"
    first = key not in _reported and len(_reported) < _LIMIT
    if first:
        _reported.add(key)
    logger.log(
        logging.INFO if first else logging.DEBUG,
        "Skipping Coder %s of unknown type %r (a newer Coder?)",
        what,
        name,
    )
