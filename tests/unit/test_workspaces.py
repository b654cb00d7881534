"""Which installation serves which workspace, and which workspace a Slack request is for."""

from __future__ import annotations

import asyncio

from bridge.slack.events import installation_team
from bridge.slack.routing import workspace_of
from bridge.slack.workspaces import (
    BotInstall,
    Bots,
    SingleInstall,
    WorkspaceKey,
    act_for,
    acting,
    acting_enterprise,
    acting_for,
)
from tests.slack_payloads import payload

ORG = "E0ORG"


def _install(key: WorkspaceKey) -> BotInstall:
    return BotInstall(key, "xoxb-secret", "U0BOT", "B0BOT", frozenset({"chat:write"}))


def test_a_team_install_serves_its_team_only() -> None:
    team = WorkspaceKey(ORG, "T1")
    assert team.serves(WorkspaceKey(ORG, "T1"))
    assert team.serves(WorkspaceKey(None, "T1"))  # an act that did not name the org
    assert not team.serves(WorkspaceKey(ORG, "T2"))


def test_an_org_wide_install_serves_every_team_of_its_org_and_no_other() -> None:
    org = WorkspaceKey(ORG, None)
    assert org.serves(WorkspaceKey(ORG, "T1"))
    assert org.serves(WorkspaceKey(ORG, "T2"))
    assert not org.serves(WorkspaceKey("E0OTHER", "T3"))
    assert not org.serves(WorkspaceKey(None, "T1"))
    assert not WorkspaceKey(None, None).serves(WorkspaceKey(None, None))


def test_budgets_are_the_workspace_s_or_for_the_org_as_a_whole_the_org_s() -> None:
    assert WorkspaceKey(ORG, "T1").budget_team == "T1"
    assert WorkspaceKey(ORG, None).budget_team == ORG
    assert WorkspaceKey(None, "T1").budget_team == "T1"


async def test_the_single_install_answers_for_the_workspaces_it_serves() -> None:
    org = _install(WorkspaceKey(ORG, None))
    tokens = SingleInstall(org)
    assert await tokens.bot(ORG, "T1") is org
    assert await tokens.bot(ORG, "T2") is org
    assert await tokens.bot("E0OTHER", "T1") is None
    team = SingleInstall(_install(WorkspaceKey(None, "T1")))
    assert await team.bot(None, "T1") is team.install
    assert await team.bot(None, "T2") is None


class _Separate:
    """Separate installs, each workspace's bot its own; counts how often it is asked."""

    def __init__(self) -> None:
        self.installs = {
            team: BotInstall(
                WorkspaceKey(None, team), f"xoxb-{team}", f"U0BOT{team}", f"B0BOT{team}", frozenset()
            )
            for team in ("T1", "T2")
        }
        self.asked = 0

    async def bot(self, enterprise_id: str | None, team_id: str | None) -> BotInstall | None:
        self.asked += 1
        return self.installs.get(team_id or "")


async def test_who_the_bot_is_follows_the_workspace_acted_for_and_is_kept_a_while() -> None:
    tokens, now = _Separate(), [0.0]
    bots = Bots(tokens, ttl=60.0, clock=lambda: now[0])
    assert await bots.user_id() == ""  # outside any act, with no installation of its own
    with acting_for(WorkspaceKey(None, "T1")):
        assert await bots.user_id() == "U0BOTT1"
        assert await bots.user_id() == "U0BOTT1"
    with acting_for(WorkspaceKey(None, "T2")):
        assert await bots.user_id() == "U0BOTT2"
    with acting_for(WorkspaceKey(None, "T9")):
        assert await bots.user_id() == ""
    assert tokens.asked == 3
    del tokens.installs["T1"]  # uninstalled: noticed once what was found is a minute old
    with acting_for(WorkspaceKey(None, "T1")):
        assert await bots.user_id() == "U0BOTT1"
        now[0] = 60.0
        assert await bots.user_id() == ""


async def test_one_installation_s_bot_answers_outside_any_act() -> None:
    install = _install(WorkspaceKey(ORG, None))
    assert await Bots(SingleInstall(install), default=install).user_id() == "U0BOT"


def test_an_install_keeps_its_token_out_of_its_repr() -> None:
    assert "xoxb" not in repr(_install(WorkspaceKey(ORG, "T1")))


async def test_the_workspace_acted_for_is_scoped_and_inherited_by_spawned_tasks() -> None:
    assert acting() is None
    one, two = WorkspaceKey(ORG, "T1"), WorkspaceKey(ORG, "T2")
    with acting_for(one):
        assert acting() == one
        assert acting_enterprise() == ORG
        with acting_for(two):
            assert await asyncio.create_task(_acting()) == two
        assert acting() == one
    assert acting() is None
    assert acting_enterprise() is None


async def test_acting_for_the_rest_of_a_task_stays_in_that_task() -> None:
    async def request() -> WorkspaceKey | None:
        act_for(WorkspaceKey(ORG, "T1"))
        return await asyncio.create_task(_acting())

    assert await asyncio.create_task(request()) == WorkspaceKey(ORG, "T1")
    assert acting() is None


async def _acting() -> WorkspaceKey | None:
    return acting()


def test_an_org_install_s_event_is_for_the_workspace_it_happened_in() -> None:
    """bolt-python's org-level app_mention: no team in its authorization, the org set."""
    body = payload("org_app_mention_event")
    assert workspace_of(body) == WorkspaceKey("E111", "T111")
    assert installation_team(body) == "T111"
    body["context_team_id"], body["context_enterprise_id"] = "T222", "E111"
    assert workspace_of(body) == WorkspaceKey("E111", "T222")
    assert installation_team(body) == "T222"


def test_a_shared_channel_event_is_for_the_installation_s_workspace_not_the_actor_s() -> None:
    body = payload("shared_channel_reaction_added")
    workspace = workspace_of(body)
    assert workspace is not None
    assert workspace.team_id == body["authorizations"][0]["team_id"] != body["team_id"]


def test_commands_and_interactions_name_their_workspace() -> None:
    command = {"command": "/coder", "team_id": "T1", "enterprise_id": ORG, "is_enterprise_install": "true"}
    assert workspace_of(command) == WorkspaceKey(ORG, "T1")
    click = {"type": "block_actions", "team": {"id": "T2"}, "enterprise": {"id": ORG}, "user": {"id": "W1"}}
    assert workspace_of(click) == WorkspaceKey(ORG, "T2")
    assert workspace_of({"type": "block_actions"}) is None
