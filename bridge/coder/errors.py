"""Errors raised by the Coder client.

The tree tells callers what to do, not what went wrong on the wire:

    CoderError                  base; ``message`` is Coder's own human-readable text
    ├── CoderUnavailable        network failure, timeout, 5xx, 429: retrying later may succeed
    ├── CoderRejected           4xx: the request itself is wrong; retrying won't help, tell the user
    │   ├── CoderNotFound       404: unknown chat, or one this token may not see
    │   └── CoderModelUnknown   the configured model is not one the server offers (checked at start)
    ├── CoderAuthError          401/403 on authentication: the token is missing, wrong or revoked
    ├── CoderApiMissing         no supported Chats API was found on the server (detection failed)
    └── CoderUnreadable         Coder's answer could not be read; the reason went to the log

Coder's error body is ``{"message", "detail"?, "validations"?}``; each error keeps all three so the
user sees Coder's wording and the operator the detail. Newer builds classify some answers with a
``kind`` (a hook's denial, a usage limit), kept as ``kind``; a 409 with ``resets_at`` (the older
``ChatUsageLimitExceededResponse``) is a usage limit too.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from bridge.coder.types import ErrorKind

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Validation:
    """One field-level complaint from Coder's ``validations`` list."""

    field: str
    detail: str


@dataclass
class CoderError(Exception):
    """Base of every error the Coder client raises."""

    message: str
    detail: str = ""
    status: int | None = None
    validations: Sequence[Validation] = field(default_factory=tuple)
    kind: ErrorKind = ErrorKind.GENERIC

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        """One line fit for a Slack thread or a log: Coder's message, then its detail."""
        text = self.message
        if self.detail:
            text = f"{text} ({self.detail})"
        if self.validations:
            text += ": " + "; ".join(f"{v.field}: {v.detail}" for v in self.validations)
        return text


class CoderUnavailable(CoderError):
    """Coder could not be reached or answered 5xx/429; the same call may succeed later."""


class CoderRejected(CoderError):
    """Coder refused the request (4xx); repeating it unchanged will fail again."""


class CoderNotFound(CoderRejected):
    """The chat (or other resource) does not exist or is not visible to this token."""


class CoderModelUnknown(CoderRejected):
    """The model the bridge was told to use is not in the server's list; ``detail`` lists the valid ones."""


class CoderAuthError(CoderError):
    """The session token is missing, invalid, expired or revoked."""


class CoderApiMissing(CoderError):
    """The server does not serve any Chats API generation this client supports."""


@dataclass
class CoderUnreadable(CoderError):
    """Coder answered with something this client cannot read (not JSON, or the wrong shape).

    What was wrong is a parser's text, for the operator only: it is logged once, under
    ``error_id``, when the error is made, and ``detail`` keeps it for logs. A person is shown the
    message and the id (``str`` of this error says no more).
    """

    error_id: str = field(default_factory=lambda: secrets.token_hex(4))

    def __post_init__(self) -> None:
        super().__post_init__()
        log.warning("%s [error id %s]: %s", self.message, self.error_id, self.detail)

    def __str__(self) -> str:
        """The message and the error id, never the parser's text."""
        return f"{self.message} (error id {self.error_id})"
