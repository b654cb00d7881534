"""Slack installations on the bridge's database, through slack-sdk's store interfaces: found by
workspace (an org-wide install serving its teams), tokens sealed to their workspace, deleted when
revoked; OAuth states used once. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlparse

import pytest
from cryptography.fernet import Fernet
from slack_sdk.oauth.installation_store import Installation
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import text, update
from sqlmodel import col

from bridge.db.engine import Database
from bridge.db.migrate import upgrade
from bridge.db.models import SlackInstallation
from bridge.relay.cipher import TokenCipher
from bridge.relay.installations import Installations, OAuthStates
from bridge.sim.slack import SlackSim
from bridge.slack.installations import DatabaseInstallationStore, DatabaseStateStore, InstalledBots
from bridge.slack.workspaces import WorkspaceKey
from tests.conftest import postgres_database

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
    team_id: str | None,
    *,
    enterprise_id: str | None = None,
    token: str = "",
    user_id: str = "U0INSTALLER",
    refresh_token: str | None = None,
    expires_at: int | None = None,
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
        bot_refresh_token=refresh_token,
        bot_token_expires_at=expires_at,
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


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A PostgreSQL database only: replicas share one (on SQLite a second ``bridge serve`` is refused)."""
    async for url in postgres_database():
        yield url


async def test_replicas_refreshing_one_workspace_at_once_spend_its_refresh_token_once(
    postgres_url: str,
) -> None:
    """Two replicas (each its own connections and ``InstalledBots``) find one workspace's token
    expiring at the same moment: Slack rotates the refresh token, so a second refresh with the same
    one would be refused and lose the workspace's bot. One refreshes, the other waits on the row and
    finds the new token stored."""
    async with SlackSim() as slack:
        slack.oauth.expires_in = 60  # within the two hours before expiry when tokens are refreshed
        status, back = slack.oauth.consent({"client_id": slack.oauth.client_id, "redirect_uri": "http://b/"})
        assert status == 302
        code = parse_qs(urlparse(back).query)["code"][0]
        credentials = {"client_id": slack.oauth.client_id, "client_secret": slack.oauth.client_secret}
        issued = slack.oauth.access({**credentials, "code": code}, "")
        slack.oauth.expires_in = 12 * 3600  # what a refresh gives lasts
        slack.latency = 0.3  # a refresh long under way when the other replica finds the token expiring
        replicas = [Database(postgres_url) for _ in range(2)]
        try:
            await upgrade(replicas[0])
            installations = [Installations(db, TokenCipher([KEY])) for db in replicas]
            await DatabaseInstallationStore(installations[0]).async_save(
                _installation(
                    slack.team_id,
                    token=issued["access_token"],
                    refresh_token=issued["refresh_token"],
                    expires_at=int(time.time()) + 60,
                )
            )
            rotator = AsyncTokenRotator(**credentials, client=AsyncWebClient(base_url=slack.api_url))

            found = await asyncio.gather(
                *(InstalledBots(i, rotator).bot(None, slack.team_id) for i in installations)
            )

            refreshes = [
                c for c in slack.calls_to("oauth.v2.access") if c.params.get("grant_type") == "refresh_token"
            ]
            assert [c.ok for c in refreshes] == [True]
            tokens = {bot.bot_token if bot is not None else None for bot in found}
            assert len(tokens) == 1
            (token,) = tokens
            assert token != issued["access_token"]
            assert token in slack.oauth.grants
            stored = await installations[1].find_bot(None, slack.team_id)
            assert stored is not None
            assert stored.bot_token == token
        finally:
            for db in replicas:
                await db.dispose()
