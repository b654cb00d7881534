"""The token-routing client: each call carries the token of the installation serving the workspace
acted for, as the Slack simulator sees it (it records whose token made each call and refuses a token
a conversation of another workspace)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from slack_sdk.errors import SlackApiError

from bridge.relay.ports import SlackPermanent
from bridge.sim.slack import SlackSim
from bridge.slack.routing import NoWorkspace, RoutedClient
from bridge.slack.workspaces import BotInstall, SingleInstall, WorkspaceKey, acting_for

ORG = "E0ORG"
SECOND = "T0002"
TWO = "C0TWO"
SECOND_TOKEN = "xoxb-sim-second"


class Installs:
    """Installations kept in memory, found as ``BotTokens`` promises: the team's own, else its org's."""

    def __init__(self, *installs: BotInstall) -> None:
        self._installs = {install.key: install for install in installs}
        self.asked: list[WorkspaceKey] = []

    async def bot(self, enterprise_id: str | None, team_id: str | None) -> BotInstall | None:
        self.asked.append(WorkspaceKey(enterprise_id, team_id))
        return self._installs.get(WorkspaceKey(enterprise_id, team_id)) or self._installs.get(
            WorkspaceKey(enterprise_id, None)
        )


def _install(team: str | None, token: str) -> BotInstall:
    return BotInstall(WorkspaceKey(ORG, team), token, "U0BOT", "B0BOT", frozenset())


@pytest.fixture
async def slack() -> AsyncIterator[SlackSim]:
    """An org of two workspaces, the app installed in each with a token of its own."""
    async with SlackSim(enterprise_id=ORG) as sim:
        sim.add_team(SECOND, "Second", bot_token=SECOND_TOKEN)
        sim.add_channel(TWO, "two", team=SECOND)
        yield sim


async def test_each_call_sends_the_token_of_the_workspace_acted_for(slack: SlackSim) -> None:
    installs = Installs(_install(slack.team_id, slack.bot_token), _install(SECOND, SECOND_TOKEN))
    client = RoutedClient(installs, default=None, base_url=slack.api_url)
    with acting_for(WorkspaceKey(ORG, slack.team_id)):
        await client.chat_postMessage(channel=slack.general, text="one")
        await client.chat_postMessage(channel=slack.general, text="again")
    with acting_for(WorkspaceKey(ORG, SECOND)):
        await client.chat_postMessage(channel=TWO, text="two")
    assert [(c.params["channel"], c.installation, c.ok) for c in slack.calls] == [
        (slack.general, slack.team_id, True),
        (slack.general, slack.team_id, True),
        (TWO, SECOND, True),
    ]
    assert installs.asked == [WorkspaceKey(ORG, slack.team_id), WorkspaceKey(ORG, SECOND)]  # kept


async def test_a_workspace_s_token_cannot_reach_another_workspace_s_channel(slack: SlackSim) -> None:
    """What the routing prevents, as Slack answers it: the conversation does not exist for it."""
    client = RoutedClient(
        Installs(_install(slack.team_id, slack.bot_token)), default=None, base_url=slack.api_url
    )
    with (
        acting_for(WorkspaceKey(ORG, slack.team_id)),
        pytest.raises(SlackApiError, match="channel_not_found"),
    ):
        await client.chat_postMessage(channel=TWO, text="wrong place")


async def test_a_call_outside_any_workspace_or_for_one_not_installed_is_refused(slack: SlackSim) -> None:
    client = RoutedClient(
        Installs(_install(slack.team_id, slack.bot_token)), default=None, base_url=slack.api_url
    )
    with pytest.raises(NoWorkspace, match="outside any workspace"):
        await client.auth_test()
    with acting_for(WorkspaceKey("E0OTHER", "T0009")), pytest.raises(SlackPermanent, match="not_installed"):
        await client.auth_test()
    assert slack.calls == []


async def test_one_workspace_s_token_serves_calls_outside_any_act(slack: SlackSim) -> None:
    install = _install(slack.team_id, slack.bot_token)
    client = RoutedClient(SingleInstall(install), default=install, base_url=slack.api_url)
    response = await client.auth_test()
    assert response["team_id"] == slack.team_id
    assert response["enterprise_id"] == ORG
    assert slack.calls[-1].installation == slack.team_id


async def test_an_org_wide_token_acts_in_every_workspace_of_its_org() -> None:
    async with SlackSim(enterprise_id=ORG, org_install=True) as slack:
        slack.add_team(SECOND, "Second")
        slack.add_channel(TWO, "two", team=SECOND)
        org = _install(None, slack.bot_token)
        client = RoutedClient(SingleInstall(org), default=None, base_url=slack.api_url)
        with acting_for(WorkspaceKey(ORG, None)):
            identity = await client.auth_test()
        assert identity["team_id"] is None
        assert identity["is_enterprise_install"] is True
        for team, channel in ((slack.team_id, slack.general), (SECOND, TWO)):
            with acting_for(WorkspaceKey(ORG, team)):
                await client.chat_postMessage(channel=channel, text="hello")
        assert [(c.installation, c.ok) for c in slack.calls_to("chat.postMessage")] == [(ORG, True)] * 2
