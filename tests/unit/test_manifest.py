"""manifest.yml asks for exactly the scopes and events the bridge uses."""

from __future__ import annotations

from pathlib import Path

import yaml

from bridge.slack.scopes import REQUIRED_EVENTS, REQUIRED_SCOPES

MANIFEST = Path(__file__).resolve().parents[2] / "manifest.yml"


def test_manifest_scopes_are_least_privilege() -> None:
    """The bot scopes in the manifest equal the scopes the bridge needs, no more, no less."""
    manifest = yaml.safe_load(MANIFEST.read_text())
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == set(REQUIRED_SCOPES)


def test_manifest_subscribes_to_the_events_the_bridge_handles() -> None:
    """Mentions, DMs, thread replies in public and private channels, reactions, App Home opens, and
    the Stop button and renames of Agent Sessions."""
    manifest = yaml.safe_load(MANIFEST.read_text())
    events = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    assert events == REQUIRED_EVENTS


def test_manifest_enables_the_home_tab_and_dms() -> None:
    """The App Home tab is on (the bridge publishes it) and people can DM the bot."""
    app_home = yaml.safe_load(MANIFEST.read_text())["features"]["app_home"]
    assert app_home["home_tab_enabled"] is True
    assert app_home["messages_tab_enabled"] is True
    assert app_home["messages_tab_read_only_enabled"] is False


def test_manifest_declares_the_app_an_agent() -> None:
    """agent_view makes Agent Sessions possible; its description fits Slack's 300 characters."""
    manifest = yaml.safe_load(MANIFEST.read_text())
    agent = manifest["features"]["agent_view"]
    assert 0 < len(agent["agent_description"]) <= 300
    assert "assistant_view" not in manifest["features"]


def test_manifest_declares_the_coder_command_and_interactivity() -> None:
    """/coder is declared with its usage hint and interactivity is on (buttons, the link form), both
    at the events URL."""
    manifest = yaml.safe_load(MANIFEST.read_text())
    commands = manifest["features"]["slash_commands"]
    assert [c["command"] for c in commands] == ["/coder"]
    assert commands[0]["usage_hint"].startswith("[new <task>|plan <task>|list|status [chat]|archive <chat>")
    interactivity = manifest["settings"]["interactivity"]
    assert interactivity["is_enabled"] is True
    events_url = manifest["settings"]["event_subscriptions"]["request_url"]
    assert commands[0]["url"] == interactivity["request_url"] == events_url
