"""The bot's own echoes are told apart from everything the bridge must see, and only when signed."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from bridge.sim.sender import signed_headers
from bridge.slack.echoes import EchoFilter, is_echo

BOT = {"bot_user_id": "UBOT", "bot_id": "BBOT"}


def callback(**event: Any) -> dict[str, Any]:
    return {"type": "event_callback", "team_id": "T1", "event_id": "Ev1", "event": event}


@pytest.mark.parametrize(
    "payload",
    [
        callback(type="message", user="UBOT", bot_id="BBOT", text="reply", ts="2.0"),
        callback(type="message", bot_id="BBOT", subtype="bot_message", text="reply", ts="2.0"),
        callback(
            type="message",
            subtype="message_changed",
            message={"user": "UBOT", "bot_id": "BBOT", "text": "more", "ts": "2.0"},
            previous_message={"user": "UBOT", "bot_id": "BBOT", "text": "less", "ts": "2.0"},
        ),
        callback(type="message", subtype="message_deleted", previous_message={"bot_id": "BBOT", "ts": "2.0"}),
        callback(type="reaction_added", user="UBOT", reaction="eyes", item={"type": "message", "ts": "1.0"}),
        callback(
            type="reaction_removed", user="UBOT", reaction="eyes", item={"type": "message", "ts": "1.0"}
        ),
    ],
    ids=["post", "bot-message", "edit", "deletion", "reaction", "reaction-removed"],
)
def test_the_bots_own_doings_are_echoes(payload: dict[str, Any]) -> None:
    assert is_echo(payload, **BOT)


@pytest.mark.parametrize(
    "payload",
    [
        callback(type="app_mention", user="U1", text="<@UBOT> fix it", ts="1.0"),
        callback(type="message", user="U1", text="and the tests", ts="1.1", thread_ts="1.0"),
        callback(
            type="message",
            subtype="message_changed",
            message={"user": "U1", "text": "new", "ts": "1.1"},
            previous_message={"user": "U1", "text": "old", "ts": "1.1"},
        ),
        callback(type="message", subtype="message_deleted", previous_message={"user": "U1", "ts": "1.1"}),
        callback(type="message", user="U2", bot_id="BOTHER", text="another app", ts="1.2"),
        callback(type="reaction_added", user="U1", reaction="octagonal_sign", item={"ts": "2.0"}),
        callback(type="agent_session_stopped", user="UBOT"),
        callback(type="message", subtype="message_changed", message="not an object"),
        {"type": "url_verification", "challenge": "x"},
        {"type": "event_callback", "event": "not an object"},
        ["not", "a", "payload"],
    ],
    ids=[
        "mention",
        "reply",
        "person-edit",
        "person-deletion",
        "other-bot",
        "person-reaction",
        "other-event",
        "malformed-edit",
        "url-verification",
        "malformed-event",
        "not-an-object",
    ],
)
def test_what_the_bridge_must_see_is_not_an_echo(payload: Any) -> None:
    assert not is_echo(payload, **BOT)


def delivered_to(bot_user: str, *, is_bot: bool = True, **event: Any) -> dict[str, Any]:
    """An event as delivered to another workspace's installation, whose bot is ``bot_user``."""
    return {
        **callback(**event),
        "api_app_id": "A1",
        "authorizations": [{"team_id": "T2", "user_id": bot_user, "is_bot": is_bot}],
    }


@pytest.mark.parametrize(
    "payload",
    [
        delivered_to("UBOT2", type="message", user="UBOT2", bot_id="BBOT2", app_id="A1", text="r", ts="2.0"),
        delivered_to("UBOT2", type="message", bot_id="BBOT2", app_id="A1", subtype="bot_message", ts="2.0"),
        delivered_to("UBOT2", type="reaction_added", user="UBOT2", reaction="eyes", item={"ts": "1.0"}),
    ],
    ids=["post", "bot-message", "reaction"],
)
def test_the_bot_of_the_installation_an_event_reached_is_recognised_without_configuration(
    payload: dict[str, Any],
) -> None:
    """Installed through OAuth, each workspace's bot differs and none is configured: the event names
    the receiving installation's bot, and the app's messages carry its app id."""
    assert is_echo(payload)


@pytest.mark.parametrize(
    "payload",
    [
        delivered_to("UBOT2", type="message", user="U1", text="<@UBOT2> hi", ts="1.0"),
        delivered_to("UBOT2", type="message", user="U3", bot_id="BOTHER", app_id="A9", text="x", ts="1.2"),
        delivered_to("U1", is_bot=False, type="reaction_added", user="U1", reaction="x", item={"ts": "1"}),
    ],
    ids=["person", "another-app", "user-authorization"],
)
def test_people_and_other_apps_in_such_a_workspace_are_no_echoes(payload: dict[str, Any]) -> None:
    assert not is_echo(payload)


def test_an_echo_counts_only_when_signed_with_the_apps_secret() -> None:
    """A forged echo goes on to Bolt, which refuses it, as do form-encoded and broken bodies."""
    echoes = EchoFilter("secret", **BOT)
    body = json.dumps(callback(type="message", user="UBOT", bot_id="BBOT", text="r", ts="2.0")).encode()
    now = int(time.time())
    assert echoes.is_echo(body, signed_headers("secret", body, "application/json", timestamp=now))
    assert not echoes.is_echo(body, signed_headers("forged", body, "application/json", timestamp=now))
    assert not echoes.is_echo(body, signed_headers("secret", body, "application/json", timestamp=now - 3600))
    assert not echoes.is_echo(body, {})
    assert not echoes.is_echo(body, {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"})
    form = b"payload=%7B%7D"
    assert not echoes.is_echo(
        form, signed_headers("secret", form, "application/x-www-form-urlencoded", timestamp=now)
    )
    broken = b"{not json"
    assert not echoes.is_echo(broken, signed_headers("secret", broken, "application/json", timestamp=now))
