"""Slack installations on the bridge's database, through slack-sdk's store interfaces: found by
workspace (an org-wide install serving its teams), tokens sealed to their workspace, deleted when
revoked; OAuth states used once. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from cryptography.fernet import Fernet
from slack_sdk.oauth.installation_store import Installation
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator
from sqlalchemy import text, update
from sqlmodel import col

from bridge.db.engine import Database
from bridge.db.migrate import upgrade
from bridge.db.models import SlackInstallation
from bridge.relay.cipher import TokenCipher
from bridge.relay.installations import Installations, OAuthStates
from bridge.slack.installations import DatabaseInstallationStore, DatabaseStateStore, InstalledBots
from bridge.slack.workspaces import WorkspaceKey

KEY = Fernet.generate_key().decode()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await upgrade(database)
    try:
        yield database
    finally:
        await database.dispose()


def _installation(
    team_id: str | None, *, enterprise_id: str | None = None, token: str = "", user_id: str = "U0INSTALLER"
) -> Installation:
    label = team_id or enterprise_id
    return Installation(
        app_id="A0APP",
        enterprise_id=enterprise_id,
        team_id=team_id,
        team_name=f"Team {label}",
        bot_token=token or f"xoxb-{label}-secret",
        bot_id=f"B{label}",
        bot_user_id=f"U{label}",
        bot_scopes="chat:write,commands",
        user_id=user_id,
        user_token=f"xoxp-{label}-installer",
        user_scopes="search:read",
        is_enterprise_install=team_id is None,
        token_type="bot",
    )


def _stores(db: Database, keys: str = KEY) -> tuple[Installations, DatabaseInstallationStore]:
    installations = Installations(db, TokenCipher(keys.split(",")))
    return installations, DatabaseInstallationStore(installations)


def _bots(installations: Installations) -> InstalledBots:
    return InstalledBots(installations, AsyncTokenRotator(client_id="unused", client_secret="unused"))


async def _rows(db: Database) -> list[str]:
    async with db.unit() as session:
        rows = (await session.execute(text("SELECT * FROM slack_installation"))).all()
    return [" ".join(str(value) for value in row) for row in rows]


async def test_an_installation_is_found_by_its_workspace_and_its_tokens_are_stored_sealed(
    db: Database,
) -> None:
    installations, store = _stores(db)
    await store.async_save(_installation("T1"))
    await store.async_save(_installation("T2"))

    bot = await store.async_find_bot(enterprise_id=None, team_id="T1")
    assert bot is not None
    assert (bot.bot_token, bot.bot_user_id, bot.bot_id, bot.bot_scopes) == (
        "xoxb-T1-secret",
        "UT1",
        "BT1",
        ["chat:write", "commands"],
    )
    found = await store.async_find_installation(enterprise_id=None, team_id="T2", user_id="U0INSTALLER")
    assert found is not None
    assert (found.bot_token, found.user_token, found.team_name) == (
        "xoxb-T2-secret",
        "xoxp-T2-installer",
        "Team T2",
    )
    assert await store.async_find_bot(enterprise_id=None, team_id="T3") is None
    assert await installations.count() == 2
    rows = await _rows(db)
    assert len(rows) == 2
    assert not any("secret" in row or "installer" in row for row in rows)


async def test_a_reinstall_replaces_the_bot_for_every_installer_of_the_workspace(db: Database) -> None:
    _, store = _stores(db)
    await store.async_save(_installation("T1", user_id="U1", token="xoxb-first"))
    await store.async_save(_installation("T1", user_id="U2", token="xoxb-second"))

    for user in ("U1", "U2"):
        found = await store.async_find_installation(enterprise_id=None, team_id="T1", user_id=user)
        assert found is not None
        assert found.bot_token == "xoxb-second"
    latest = await store.async_find_installation(enterprise_id=None, team_id="T1")
    assert latest is not None
    assert latest.user_id == "U2"


async def test_an_org_wide_install_serves_every_team_of_its_org_after_their_own_installs(
    db: Database,
) -> None:
    installations, store = _stores(db)
    await store.async_save(_installation(None, enterprise_id="E1"))
    await store.async_save(_installation("T9", enterprise_id="E1"))
    bots = _bots(installations)

    own = await bots.bot("E1", "T9")
    assert own is not None
    assert (own.key, own.bot_token) == (WorkspaceKey("E1", "T9"), "xoxb-T9-secret")
    org = await bots.bot("E1", "T5")
    assert org is not None
    assert (org.key, org.bot_token, org.scopes) == (
        WorkspaceKey("E1", None),
        "xoxb-E1-secret",
        frozenset({"chat:write", "commands"}),
    )
    assert await bots.bot("E2", "T5") is None
    assert await bots.bot(None, "T5") is None
    via_sdk = await store.async_find_bot(enterprise_id="E1", team_id="T5", is_enterprise_install=True)
    assert via_sdk is not None
    assert via_sdk.bot_token == "xoxb-E1-secret"


async def test_revoked_tokens_and_uninstalls_are_deleted(db: Database) -> None:
    installations, store = _stores(db)
    await store.async_save(_installation("T1", user_id="U1"))
    await store.async_save(_installation("T1", user_id="U2"))
    await store.async_save(_installation("T2"))

    await store.async_delete_bot(enterprise_id=None, team_id="T1")
    assert await store.async_find_bot(enterprise_id=None, team_id="T1") is None
    kept = await store.async_find_installation(enterprise_id=None, team_id="T1", user_id="U1")
    assert kept is not None
    assert (kept.bot_token, kept.user_token) == (None, "xoxp-T1-installer")

    await store.async_delete_installation(enterprise_id=None, team_id="T1", user_id="U1")
    assert await store.async_find_installation(enterprise_id=None, team_id="T1", user_id="U1") is None
    assert await store.async_find_installation(enterprise_id=None, team_id="T1", user_id="U2") is not None

    await store.async_delete_all(enterprise_id=None, team_id="T1")
    assert await store.async_find_installation(enterprise_id=None, team_id="T1") is None
    assert await store.async_find_bot(enterprise_id=None, team_id="T2") is not None
    assert await installations.count() == 1


async def test_a_token_moved_to_another_workspace_is_refused(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Whoever can write the database cannot hand one workspace's bot to another."""
    _, store = _stores(db)
    await store.async_save(_installation("T1"))
    await store.async_save(_installation("T2"))
    async with db.unit() as session:
        t1 = (
            await session.execute(
                text("SELECT bot_token_ciphertext FROM slack_installation WHERE team_id = 'T1'")
            )
        ).scalar_one()
        moved = update(SlackInstallation).where(col(SlackInstallation.team_id) == "T2")
        await session.execute(moved.values(bot_token_ciphertext=t1))

    assert await store.async_find_bot(enterprise_id=None, team_id="T2") is None
    assert "sealed for another person or purpose" in caplog.text
    assert "xoxb-" not in caplog.text


async def test_tokens_sealed_under_an_old_key_are_stored_again_under_the_new_one(db: Database) -> None:
    _, old = _stores(db)
    await old.async_save(_installation("T1"))
    newer = Fernet.generate_key().decode()
    _, store = _stores(db, f"{newer},{KEY}")

    bot = await store.async_find_bot(enterprise_id=None, team_id="T1")
    assert bot is not None
    assert bot.bot_token == "xoxb-T1-secret"
    _, only_new = _stores(db, newer)
    again = await only_new.async_find_bot(enterprise_id=None, team_id="T1")
    assert again is not None
    assert again.bot_token == "xoxb-T1-secret"


async def test_an_oauth_state_is_used_once_and_not_after_it_expires(db: Database) -> None:
    states = DatabaseStateStore(OAuthStates(db, expiration_seconds=600))
    state = await states.async_issue()
    assert await states.async_consume(state)
    assert not await states.async_consume(state)
    assert not await states.async_consume("forged-" + state[:20])
    assert not await states.async_consume("")

    expired = DatabaseStateStore(OAuthStates(db, expiration_seconds=0))
    stale = await expired.async_issue()
    assert not await expired.async_consume(stale)
