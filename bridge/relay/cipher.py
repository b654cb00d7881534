"""Secrets at rest: encrypted, bound to the row they were stored for, re-encrypted as keys rotate.

A stored secret (a person's Coder token) is a Fernet token (AES-128-CBC + HMAC-SHA256) made with
the newest key of ``BRIDGE_ENCRYPTION_KEY``; every configured key opens one (``MultiFernet``).

Fernet takes no associated data, so the context a secret was sealed for (its purpose, the Slack
team and the Slack user of its row) travels inside the encrypted plaintext, beside the secret, and
Fernet's HMAC authenticates it with the secret. A ciphertext copied to another person's row still
decrypts, but names someone else and is refused: whoever can write the database cannot hand an
admin's token to another person. Keeping Fernet (rather than AES-GCM with the context as AAD) keeps
``MultiFernet.rotate`` and the keys operators already have; the context costs a few bytes.

A ciphertext opened with an older key, or stored before secrets were bound (its plaintext is the
bare secret), comes back with the ciphertext to store instead: rotated to the newest key
(``MultiFernet.rotate``) or sealed anew with its binding. So keys rotate on read, and
``bridge rotate-keys`` does the same for every row at once, after which the old key can go.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

_BOUND = b"bridge-sealed-v2\n"
"""Starts the plaintext of a bound secret; a plaintext without it is a bare secret from before."""


@dataclass(frozen=True)
class Binding:
    """What a stored secret is for: its purpose, and the Slack person whose row holds it."""

    purpose: str
    team_id: str
    user_id: str


@dataclass(frozen=True)
class Opened:
    """A secret taken out of storage, and the ciphertext to store instead, if it should change."""

    secret: str
    resealed: str | None = None
    """Set when the stored ciphertext was made with an older key or before secrets were bound."""


class Refusal(Enum):
    """Why a stored ciphertext gives no secret."""

    NO_KEY = "no configured key opens it"
    OTHER_ROW = "it was sealed for another person or purpose"


class TokenCipher:
    """Seals secrets bound to their row with the newest key; opens them with any configured key."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        self._newest = Fernet(keys[0])
        self._all = MultiFernet([Fernet(key) for key in keys])

    def seal(self, secret: str, binding: Binding) -> str:
        """The secret and its binding, encrypted and authenticated, as text for the database."""
        return self._all.encrypt(_BOUND + _context(binding, secret)).decode()

    def unseal(self, sealed: str, binding: Binding) -> Opened | Refusal:
        """The secret of a ciphertext stored in ``binding``'s row, or why there is none."""
        data = sealed.encode()
        try:
            plain, current = self._newest.decrypt(data), True
        except InvalidToken:
            try:
                plain, current = self._all.decrypt(data), False
            except InvalidToken:
                return Refusal.NO_KEY
        if not plain.startswith(_BOUND):  # a bare secret, stored before binding: bound now, to this row
            secret = plain.decode()
            return Opened(secret, resealed=self.seal(secret, binding))
        try:
            fields = json.loads(plain[len(_BOUND) :])
        except ValueError:
            return Refusal.OTHER_ROW
        sealed_secret = fields.pop("secret", None) if isinstance(fields, dict) else None
        if not isinstance(sealed_secret, str) or fields != json.loads(_context(binding)):
            return Refusal.OTHER_ROW
        return Opened(sealed_secret, resealed=None if current else self._all.rotate(data).decode())


def _context(binding: Binding, secret: str | None = None) -> bytes:
    fields = {"purpose": binding.purpose, "team": binding.team_id, "user": binding.user_id}
    if secret is not None:
        fields["secret"] = secret
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
