"""Installing the bridge into workspaces through Slack's OAuth flow, end to end: a browser goes
through ``/slack/install``, the simulated consent screen and ``/slack/oauth_redirect``; the
installation is stored sealed, Bolt authorizes that workspace's events with its bot, an expiring
token is refreshed, an uninstall deletes it, and a bad state gets a plain page.

These stop at what Bolt's ``authorize`` and the inbound side do (whether an event is taken in);
test_distribution follows installed workspaces through to the answers.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlparse

import aiohttp
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import text

from bridge.app import Bridge
from bridge.config import Settings
from bridge.relay.cipher import TokenCipher
from bridge.relay.installations import Installations
from bridge.sim.coder import CoderSim
from bridge.sim.slack import SlackSim
from bridge.slack.scopes import REQUIRED_SCOPES
from tests.integration.conftest import CODER_TOKEN, SIGNING_SECRET, make_settings, until_logged
from tests.slack_payloads import payload

KEY = Fernet.generate_key().decode()
NOT_INSTALLED = "no longer available"
"""Bolt's answer to an event from a workspace it finds no installation for."""


@dataclass
class Installing:
    slack: SlackSim
    bridge: Bridge

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.bridge.port}"

    def installations(self) -> Installations:
        return Installations(self.bridge.db, TokenCipher([KEY]))

    async def consent(self, query: str = "") -> str:
        """A browser opens ``/slack/install`` and approves in Slack: where Slack sends it back."""
        async with aiohttp.ClientSession() as browser:
            started = await browser.get(f"{self.url}/slack/install{query}", allow_redirects=False)
            assert started.status == 302
            assert "slack-app-oauth-state=" in started.headers["Set-Cookie"]
            approved = await browser.get(started.headers["Location"], allow_redirects=False)
            assert approved.status == 302
            return approved.headers["Location"]

    async def come_back(self, back: str, *, cookie: bool = True) -> tuple[int, str]:
        """The browser lands on the redirect URL (with the state cookie the install set): the page."""
        state = parse_qs(urlparse(back).query).get("state", [""])[0]
        headers = {"Cookie": f"slack-app-oauth-state={state}"} if cookie else {}
        async with aiohttp.ClientSession() as browser:
            page = await browser.get(back, headers=headers, allow_redirects=False)
            return page.status, await page.text()

    async def install(self, query: str = "") -> tuple[int, str]:
        return await self.come_back(await self.consent(query))

    async def mention(self, words: str = "hello") -> str:
        """Alice mentions the bot; Bolt's answer to the ``app_mention`` delivery."""
        await self.slack.user_says(
            self.slack.alice, self.slack.general, f"<@{self.slack.bot_user_id}> {words}"
        )
        mention = [d for d in self.slack.deliveries if d.event_type == "app_mention"][-1]
        assert mention.status == 200
        return mention.response_body

    async def stored(self) -> list[str]:
        """Every installation row, its columns as text."""
        async with self.bridge.db.unit() as session:
            rows = (await session.execute(text("SELECT * FROM slack_installation"))).all()
        return [" ".join(str(value) for value in row) for row in rows]


def distribution_settings(slack: SlackSim, coder: CoderSim, database_url: str) -> Settings:
    """A bridge installed through OAuth on the simulators: client id and secret, no bot token."""
    return make_settings(
        slack,
        coder,
        database_url,
        slack_bot_token=None,
        slack_client_id=slack.oauth.client_id,
        slack_client_secret=SecretStr(slack.oauth.client_secret),
        encryption_key=SecretStr(KEY),
    )


@pytest.fixture
async def installing(database_url: str) -> AsyncIterator[Installing]:
    """A bridge in distribution mode (client id and secret, no bot token) on the simulators."""
    async with (
        CoderSim(tokens={CODER_TOKEN: "alice"}, part_interval=0.002) as coder,
        SlackSim(signing_secret=SIGNING_SECRET, time_scale=0.05) as slack,
    ):
        bridge = Bridge(distribution_settings(slack, coder, database_url))
        await bridge.start()
        slack.event_url = f"http://127.0.0.1:{bridge.port}/slack/events"
        slack.oauth.redirect_url = f"http://127.0.0.1:{bridge.port}/slack/oauth_redirect"
        try:
            yield Installing(slack, bridge)
        finally:
            await bridge.stop()


async def test_an_install_is_stored_sealed_and_its_workspace_events_are_taken_in(
    installing: Installing,
) -> None:
    slack = installing.slack
    assert NOT_INSTALLED in await installing.mention("before")

    status, page = await installing.install()

    assert status == 200
    assert "The bridge is installed in Example" in page
    (token,) = slack.oauth.grants
    consent = slack.oauth.consents[-1]
    assert set(consent["scope"].split(",")) == set(REQUIRED_SCOPES)
    assert consent["client_id"] == slack.oauth.client_id
    exchange = slack.calls_to("oauth.v2.access")
    assert [(c.ok, c.token) for c in exchange] == [(True, None)]  # the app's credentials, no token
    assert token in [c.token for c in slack.calls_to("auth.test")]
    rows = await installing.stored()
    assert len(rows) == 1
    assert token not in rows[0]
    bot = await installing.installations().find_bot(None, slack.team_id)
    assert bot is not None
    assert (bot.bot_token, bot.bot_user_id, bot.bot_id) == (token, slack.bot_user_id, slack.bot_id)

    assert await installing.mention("after") == ""
    async with installing.bridge.db.unit() as session:
        taken = (await session.execute(text("SELECT count(*) FROM seen_event"))).scalar_one()
    assert taken >= 1


async def test_an_org_wide_install_is_stored_without_a_team(installing: Installing) -> None:
    slack = installing.slack
    slack.oauth.enterprise = ("E0ORG", "Example Org")
    slack.oauth.org_wide = True

    status, page = await installing.install()

    assert status == 200
    assert "installed in Example Org" in page
    bot = await installing.installations().find_bot("E0ORG", None)
    assert bot is not None
    assert bot.is_enterprise_install
    assert bot.bot_token in slack.oauth.grants


async def test_an_expiring_token_is_refreshed_and_the_new_one_stored(
    installing: Installing, caplog: pytest.LogCaptureFixture
) -> None:
    slack = installing.slack
    slack.oauth.expires_in = 60  # within the two hours before expiry when tokens are refreshed
    await installing.install()
    (first,) = slack.oauth.grants
    slack.oauth.expires_in = 12 * 3600

    with caplog.at_level(logging.INFO):
        assert await installing.mention() == ""

    refreshes = [
        c for c in slack.calls_to("oauth.v2.access") if c.params.get("grant_type") == "refresh_token"
    ]
    assert [c.ok for c in refreshes] == [True]
    bot = await installing.installations().find_bot(None, slack.team_id)
    assert bot is not None
    assert bot.bot_token != first
    assert bot.bot_token in slack.oauth.grants
    assert bot.bot_token_expires_at is not None
    assert bot.bot_token not in " ".join(await installing.stored())
    assert "refreshed the bot token of workspace -/T0001" in caplog.text
    assert bot.bot_token not in caplog.text
    assert first not in caplog.text


async def test_a_token_slack_no_longer_refreshes_leaves_the_workspace_unauthorized(
    installing: Installing, caplog: pytest.LogCaptureFixture
) -> None:
    slack = installing.slack
    slack.oauth.expires_in = 60
    await installing.install()
    slack.oauth.uninstall(slack.team_id)  # removed while the bridge missed app_uninstalled

    assert NOT_INSTALLED in await installing.mention()

    assert "Slack refused to refresh the bot token of workspace -/T0001: invalid_refresh_token" in caplog.text
    assert "xoxe-" not in caplog.text


async def test_an_uninstall_deletes_the_installation(
    installing: Installing, caplog: pytest.LogCaptureFixture
) -> None:
    slack = installing.slack
    await installing.install()
    (token,) = slack.oauth.grants

    with caplog.at_level(logging.INFO):
        async with until_logged("bridge.slack.oauth", "its installation is deleted"):
            delivery = await slack.uninstall_app()
            assert delivery.status == 200
    assert await installing.installations().count() == 0
    assert await installing.stored() == []
    assert "removed from workspace -/T0001: its installation is deleted" in caplog.text
    assert token not in caplog.text
    assert NOT_INSTALLED in await installing.mention("after")


async def test_a_forged_reused_or_foreign_state_is_refused_with_a_plain_page(installing: Installing) -> None:
    back = await installing.consent()
    state = parse_qs(urlparse(back).query)["state"][0]

    status, page = await installing.come_back(back.replace(state, "forged"))
    assert (status, "expired or was already used" in page) == (401, True)
    status, page = await installing.come_back(back, cookie=False)
    assert (status, "started in another browser" in page) == (400, True)
    status, page = await installing.come_back(back)
    assert status == 200
    status, page = await installing.come_back(back)
    assert (status, "expired or was already used" in page) == (401, True)
    status, page = await installing.come_back(f"{installing.url}/slack/oauth_redirect?error=access_denied")
    assert (status, "cancelled in Slack, so nothing was installed" in page) == (200, True)
    assert "Start the installation again" in page
    assert len(await installing.stored()) == 1


async def test_a_revoked_bot_token_is_deleted(installing: Installing) -> None:
    slack = installing.slack
    await installing.install()
    async with until_logged(
        "bridge.slack.oauth", "Slack revoked the bot token of workspace -/T0001: it is deleted"
    ):
        event = payload("tokens_revoked")["event"]  # wrapped for the simulated workspace
        delivery = await slack.deliver_event(event)
        assert delivery.status == 200
    assert await installing.installations().find_bot(None, slack.team_id) is None
    assert NOT_INSTALLED in await installing.mention("after")


async def test_an_org_wide_install_authorizes_the_events_of_its_teams(installing: Installing) -> None:
    slack = installing.slack
    slack.oauth.enterprise = ("E111", "Example Org")
    slack.oauth.org_wide = True
    body = payload("app_mention_org_install")
    refused = await slack.deliver_event(body, wrap=False)
    assert NOT_INSTALLED in refused.response_body

    await installing.install()

    body["event_id"] = "Ev112"
    taken = await slack.deliver_event(body, wrap=False)
    assert (taken.status, taken.response_body) == (200, "")
