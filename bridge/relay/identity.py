"""Whose Coder token a chat runs with: the bridge's own (shared mode) or its requester's (linked mode).

In linked mode each Slack user links their own Coder account (``/coder link``), so Coder's
permissions and audit log apply to what the agent does for them. Their token is checked against
Coder before it is kept, stored only encrypted and bound to its row (``cipher``: keys from
``BRIDGE_ENCRYPTION_KEY``, the first encrypts, every one decrypts, and a token read under an older
key is stored again under the newest), and never logged or shown again. A stored token sealed for
someone else (a row tampered with) is refused and the link marked broken: its owner links again.
How many tokens one person may have checked in a while is limited (``attempts``).
A token Coder refuses later (revoked, expired) marks the link broken and its owner is told
privately how to link again; nothing retries with it.

The relay asks ``backend_for`` / ``backend_for_link`` for the backend to use; ``None`` means the
person has no working link, and nothing may be sent to Coder on their behalf.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from bridge.coder.backend import CoderBackend
from bridge.coder.types import CoderUser
from bridge.db import repo
from bridge.db.engine import Database
from bridge.db.models import ThreadLink, UserLink
from bridge.relay.attempts import LinkThrottle
from bridge.relay.cipher import Binding, Opened, Refusal, TokenCipher
from bridge.relay.ports import SlackError, Whisperer

log = logging.getLogger(__name__)

IdentityMode = Literal["shared", "linked"]
BackendFactory = Callable[[str], Awaitable[CoderBackend]]
"""Builds a backend for one token, of the generation the bridge detected at start (no probing)."""

HOW_TO_LINK = (
    "This bridge runs Coder chats with each person's own Coder account, and yours isn't linked (or its "
    "token stopped working). "
    "Type `/coder link` and paste a Coder token (`coder tokens create`); then mention me again."
)
RELINK = (
    "Coder refused your linked token (revoked or expired), so your message was not sent. "
    "Type `/coder link` with a new token (`coder tokens create`), then send it again."
)


CODER_TOKEN = "coder_token"
"""The purpose a linked person's Coder token is sealed for."""


def token_binding(team_id: str, user_id: str) -> Binding:
    """The row a person's Coder token belongs to."""
    return Binding(CODER_TOKEN, team_id, user_id)


@dataclass
class Rotation:
    """What ``rotate_tokens`` did, in counts (never a token)."""

    resealed: int = 0
    current: int = 0
    refused: int = 0
    unreadable: int = 0


async def rotate_tokens(db: Database, cipher: TokenCipher) -> Rotation:
    """Store every linked token again under the newest key, bound to its row, so older keys can be
    retired. A token sealed for another row is refused and its link marked broken, as on read; one
    no configured key opens is left as it is (its owner must link again)."""
    rotation = Rotation()
    async with db.unit() as session:
        links = await repo.find_all_user_links(session)
    for link in links:
        opened = await _open(db, cipher, link)
        if opened is Refusal.NO_KEY:
            rotation.unreadable += 1
        elif opened is Refusal.OTHER_ROW:
            rotation.refused += 1
        elif isinstance(opened, Opened) and opened.resealed is not None:
            rotation.resealed += 1
        else:
            rotation.current += 1
    return rotation


async def _open(db: Database, cipher: TokenCipher, link: UserLink) -> Opened | Refusal:
    """A link's token, stored again first when it was sealed under an older key or unbound; a token
    sealed for another row marks the link broken (logged once: it is refused from then on)."""
    opened = cipher.unseal(link.token_ciphertext, token_binding(link.team_id, link.slack_user_id))
    if isinstance(opened, Opened) and opened.resealed is not None:
        async with db.unit() as session:
            await repo.replace_user_token(
                session,
                team_id=link.team_id,
                slack_user_id=link.slack_user_id,
                old=link.token_ciphertext,
                new=opened.resealed,
            )
    elif opened is Refusal.OTHER_ROW:
        async with db.unit() as session:
            broke = await repo.mark_user_link_broken(
                session, team_id=link.team_id, slack_user_id=link.slack_user_id
            )
        if broke:
            log.warning(
                "the stored Coder token of %s was sealed for another person or purpose (the database was "
                "changed outside the bridge?); refused, they must link again",
                link.slack_user_id,
            )
    return opened


def _fingerprint(token: str) -> str:
    """A stable cache key that is not the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


class Identity:
    """Chooses the Coder backend for each person and keeps linked users' backends."""

    def __init__(
        self,
        db: Database,
        shared: CoderBackend,
        whisperer: Whisperer,
        *,
        mode: IdentityMode = "shared",
        cipher: TokenCipher | None = None,
        connect: BackendFactory | None = None,
        throttle: LinkThrottle | None = None,
    ) -> None:
        if mode == "linked" and (cipher is None or connect is None or throttle is None):
            raise ValueError("linked mode needs a cipher, a backend factory and a link throttle")
        self._db = db
        self.shared = shared
        self._whisperer = whisperer
        self.mode: IdentityMode = mode
        self._cipher = cipher
        self._connect = connect
        self._throttle = throttle
        self._backends: dict[str, CoderBackend] = {}

    @property
    def linked(self) -> bool:
        """Whether chats run with their requester's own token."""
        return self.mode == "linked"

    async def backend_for(self, team_id: str, user_id: str) -> CoderBackend | None:
        """The backend that acts for this person; None in linked mode without a working link."""
        if not self.linked:
            return self.shared
        async with self._db.unit() as session:
            link = await repo.find_user_link(session, team_id=team_id, slack_user_id=user_id)
        if link is None or link.broken:
            return None
        assert self._cipher is not None
        opened = await _open(self._db, self._cipher, link)
        if opened is Refusal.NO_KEY:
            log.warning(
                "the stored Coder token of %s opens with no configured key; treated as unlinked", user_id
            )
        if not isinstance(opened, Opened):
            return None
        return await self._backend(opened.secret)

    async def backend_for_link(self, link: ThreadLink) -> CoderBackend | None:
        """The backend of a thread's chat: its requester's in linked mode (the chat's owner)."""
        return await self.backend_for(link.team_id, link.requester_user_id)

    async def _backend(self, token: str) -> CoderBackend:
        key = _fingerprint(token)
        backend = self._backends.get(key)
        if backend is None:
            assert self._connect is not None
            backend = self._backends[key] = await self._connect(token)
        return backend

    async def link(self, team_id: str, user_id: str, token: str) -> CoderUser:
        """Check ``token`` with Coder and, if it is good, keep it (encrypted) for this person.

        Raises ``TooManyAttempts`` when the person has had too many tokens checked lately (Coder is
        not asked), ``CoderAuthError`` for a token Coder refuses and ``CoderError`` when Coder can't
        be asked; nothing is stored then.
        """
        assert self._cipher is not None
        assert self._connect is not None
        assert self._throttle is not None
        await self._throttle.take(team_id, user_id)
        backend = await self._connect(token)
        try:
            user = await backend.whoami()
        finally:
            await backend.aclose()
        async with self._db.unit() as session:
            await repo.save_user_link(
                session,
                team_id=team_id,
                slack_user_id=user_id,
                coder_user_id=user.id,
                coder_username=user.username,
                token_ciphertext=self._cipher.seal(token, token_binding(team_id, user_id)),
            )
        log.info("Slack user %s linked Coder user %s", user_id, user.username)
        return user

    async def unlink(self, team_id: str, user_id: str) -> bool:
        """Forget a person's link and close their backend; False when they had none."""
        backend = await self.backend_for(team_id, user_id) if self.linked else None
        async with self._db.unit() as session:
            removed = await repo.delete_user_link(session, team_id=team_id, slack_user_id=user_id)
        if backend is not None:
            await self._forget(backend)
        return removed

    async def refused(self, team_id: str, user_id: str, channel: str, thread_ts: str | None) -> bool:
        """Coder answered 401 to this person's token: mark the link broken and tell them privately.

        False in shared mode, where the token is the operator's and the thread is told instead.
        """
        if not self.linked:
            return False
        backend = await self.backend_for(team_id, user_id)
        async with self._db.unit() as session:
            broke = await repo.mark_user_link_broken(session, team_id=team_id, slack_user_id=user_id)
        if backend is not None:
            await self._forget(backend)
        if broke:  # several requests may fail with the same token at once: one notice
            log.warning("Coder refused the linked token of Slack user %s; link marked broken", user_id)
            await self.whisper(channel, user_id, thread_ts, RELINK)
        return True

    async def whisper(self, channel: str, user_id: str, thread_ts: str | None, text: str) -> None:
        """An ephemeral note to one person; a Slack failure is logged, never raised."""
        try:
            await self._whisperer.whisper(channel, user_id, thread_ts, text)
        except SlackError as exc:
            log.warning("could not tell %s privately: %s", user_id, exc)

    async def _forget(self, backend: CoderBackend) -> None:
        for key, cached in list(self._backends.items()):
            if cached is backend:
                del self._backends[key]
        await backend.aclose()

    async def aclose(self) -> None:
        """Close every per-person backend (the shared one belongs to the caller)."""
        backends, self._backends = list(self._backends.values()), {}
        for backend in backends:
            await backend.aclose()
