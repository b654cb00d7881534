"""The Slack simulator's OAuth side against slack-sdk, as the bridge's flow uses it: the consent
screen, ``oauth.v2.access`` for both grants answering in the shape of real answers
(``tests/fixtures/slack/oauth_v2_access*.json``) and refusing as Slack does, and each issued token
acting as its own team's bot until it expires or the app is removed."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bridge.sim.slack import SlackSim
from tests.slack_payloads import payload

REDIRECT = "https://bridge.example.com/slack/oauth_redirect"


@pytest.fixture
async def slack() -> AsyncIterator[SlackSim]:
    async with SlackSim() as sim:
        yield sim


async def _code(slack: SlackSim, **query: str) -> str:
    """Approve an install on the consent screen: the code it sends back."""
    values = {"client_id": slack.oauth.client_id, "scope": "chat:write,commands", "state": "s1", **query}
    async with aiohttp.ClientSession() as browser:
        answer = await browser.get(
            f"{slack.base_url}/oauth/v2/authorize?{urlencode(values)}", allow_redirects=False
        )
    assert answer.status == 302
    back = urlparse(answer.headers["Location"])
    assert back._replace(query="").geturl() == REDIRECT
    returned = parse_qs(back.query)
    assert returned["state"] == ["s1"]
    return returned["code"][0]


async def _access(slack: SlackSim, secret: str | None = None, **params: str) -> dict[str, Any]:
    client = AsyncWebClient(base_url=slack.api_url)
    try:
        answer = await client.oauth_v2_access(
            client_id=slack.oauth.client_id, client_secret=secret or slack.oauth.client_secret, **params
        )
    except SlackApiError as exc:
        return dict(exc.response.data)
    return dict(answer.data)  # type: ignore[arg-type]


def _same_shape(real: dict[str, Any], simulated: dict[str, Any]) -> None:
    """Every field of the real answer is there, of the same type (objects compared field by field)."""
    for name, value in real.items():
        assert name in simulated, name
        if isinstance(value, dict):
            _same_shape(value, simulated[name])
        else:
            assert type(simulated[name]) is type(value), name


async def test_an_install_answers_like_slack_and_its_token_is_its_teams_bot(slack: SlackSim) -> None:
    slack.oauth.enterprise = ("E0ORG", "Example Org")
    code = await _code(slack, redirect_uri=REDIRECT, team="T0TWO")

    answer = await _access(slack, code=code, redirect_uri=REDIRECT)

    installed = payload("oauth_v2_access")
    installed["authed_user"] = {"id": installed["authed_user"]["id"]}  # no user scopes were asked
    _same_shape(installed, answer)
    assert (answer["team"]["id"], answer["enterprise"]["id"], answer["is_enterprise_install"]) == (
        "T0TWO",
        "E0ORG",
        False,
    )
    who = await AsyncWebClient(base_url=slack.api_url, token=answer["access_token"]).auth_test()
    assert (who["team_id"], who["user_id"], who["enterprise_id"]) == ("T0TWO", answer["bot_user_id"], "E0ORG")
    assert who.headers["x-oauth-scopes"] == "chat:write,commands"
    assert slack.calls_to("auth.test")[-1].token == answer["access_token"]
    again = await _access(slack, code=code)
    assert again == {"ok": False, "error": "invalid_code"}


async def test_an_org_wide_install_has_no_team(slack: SlackSim) -> None:
    slack.oauth.redirect_url = REDIRECT
    slack.oauth.enterprise = ("E0ORG", "Example Org")
    slack.oauth.org_wide = True

    answer = await _access(slack, code=await _code(slack))

    assert (answer["team"], answer["enterprise"], answer["is_enterprise_install"]) == (
        None,
        {"id": "E0ORG", "name": "Example Org"},
        True,
    )
    who = await AsyncWebClient(base_url=slack.api_url, token=answer["access_token"]).auth_test()
    assert (who["team_id"], who["enterprise_id"], who["is_enterprise_install"]) == (None, "E0ORG", True)


async def test_rotating_tokens_expire_and_refresh_like_slack(slack: SlackSim) -> None:
    slack.oauth.redirect_url = REDIRECT
    slack.oauth.enterprise = ("E0ORG", "Example Org")
    slack.oauth.expires_in = 43200
    first = await _access(slack, code=await _code(slack))
    assert first["expires_in"] == 43200

    refreshed = await _access(slack, grant_type="refresh_token", refresh_token=first["refresh_token"])

    _same_shape(payload("oauth_v2_access_refresh"), refreshed)
    assert refreshed["access_token"] != first["access_token"]
    assert (await _access(slack, grant_type="refresh_token", refresh_token=first["refresh_token"])) == {
        "ok": False,
        "error": "invalid_refresh_token",
    }
    token = refreshed["access_token"]
    slack.oauth.grants[token] = replace(slack.oauth.grants[token], expires_at=time.time())
    with pytest.raises(SlackApiError) as expired:
        await AsyncWebClient(base_url=slack.api_url, token=refreshed["access_token"]).auth_test()
    assert expired.value.response["error"] == "token_expired"


async def test_wrong_credentials_and_removed_installs_are_refused_with_slacks_errors(slack: SlackSim) -> None:
    slack.oauth.redirect_url = REDIRECT
    code = await _code(slack)
    client = AsyncWebClient(base_url=slack.api_url)
    with pytest.raises(SlackApiError) as wrong_id:
        await client.oauth_v2_access(
            client_id="9999.9999", client_secret=slack.oauth.client_secret, code=code
        )
    assert wrong_id.value.response["error"] == "invalid_client_id"
    assert (await _access(slack, secret="wrong", code=code))["error"] == "bad_client_secret"
    answer = await _access(slack, code=code)

    delivery = await slack.uninstall_app()

    assert delivery.event_type == "app_uninstalled"
    with pytest.raises(SlackApiError) as revoked:
        await AsyncWebClient(base_url=slack.api_url, token=answer["access_token"]).auth_test()
    assert revoked.value.response["error"] == "token_revoked"
    async with aiohttp.ClientSession() as browser:
        refused = await browser.get(
            f"{slack.base_url}/oauth/v2/authorize?client_id=nope", allow_redirects=False
        )
    assert refused.status == 400
