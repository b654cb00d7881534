"""Stored secrets: readable across key rotation, rotated to the newest key on read, bound to their row."""

from __future__ import annotations

from cryptography.fernet import Fernet

from bridge.relay.cipher import Binding, Opened, Refusal, TokenCipher

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()
BOB = Binding("coder_token", "T1", "U0BOB")


def test_tokens_stay_readable_across_key_rotation() -> None:
    """A token sealed with the old key opens once a new key is put first; no key opens nothing."""
    sealed = TokenCipher([OLD]).seal("coder-token-1", BOB)
    assert "coder-token-1" not in sealed
    opened = TokenCipher([NEW, OLD]).unseal(sealed, BOB)
    assert isinstance(opened, Opened)
    assert opened.secret == "coder-token-1"
    assert TokenCipher([NEW]).unseal(sealed, BOB) is Refusal.NO_KEY
    assert TokenCipher([NEW, OLD]).seal("x", BOB) != TokenCipher([NEW, OLD]).seal("x", BOB)


def test_a_token_read_under_an_older_key_comes_back_rotated_to_the_newest() -> None:
    """Opened with an older key, a token comes with its ciphertext under the newest key, which the
    newest key alone opens; one sealed with the newest key needs nothing stored again."""
    opened = TokenCipher([NEW, OLD]).unseal(TokenCipher([OLD]).seal("coder-token-1", BOB), BOB)
    assert isinstance(opened, Opened)
    assert opened.resealed is not None
    assert TokenCipher([NEW]).unseal(opened.resealed, BOB) == Opened("coder-token-1")
    current = TokenCipher([NEW, OLD]).unseal(TokenCipher([NEW]).seal("coder-token-1", BOB), BOB)
    assert current == Opened("coder-token-1")


def test_a_ciphertext_opens_only_for_the_row_and_purpose_it_was_sealed_for() -> None:
    """A token sealed for bob is refused when read from alice's row, another team's, or for another
    purpose, though the key opens it."""
    cipher = TokenCipher([NEW])
    sealed = cipher.seal("admin-token", BOB)
    for other in (
        Binding("coder_token", "T1", "U0ALICE"),
        Binding("coder_token", "T2", "U0BOB"),
        Binding("webhook_secret", "T1", "U0BOB"),
    ):
        assert cipher.unseal(sealed, other) is Refusal.OTHER_ROW
    assert cipher.unseal(sealed, BOB) == Opened("admin-token")


def test_a_token_stored_before_binding_is_bound_to_the_row_it_is_read_from() -> None:
    """A bare Fernet token (stored by an earlier version) opens once and comes back sealed for its
    row, which then refuses any other row."""
    bare = Fernet(OLD).encrypt(b"coder-token-1").decode()
    cipher = TokenCipher([NEW, OLD])
    opened = cipher.unseal(bare, BOB)
    assert isinstance(opened, Opened)
    assert opened.secret == "coder-token-1"
    assert opened.resealed is not None
    assert TokenCipher([NEW]).unseal(opened.resealed, BOB) == Opened("coder-token-1")
    assert cipher.unseal(opened.resealed, Binding("coder_token", "T1", "U0ALICE")) is Refusal.OTHER_ROW
