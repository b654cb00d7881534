"""Parsing Slack callbacks into relay commands: people's messages only, malformed ones dropped."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.relay.context import strip_mention
from bridge.relay.controls import Click, SessionStop
from bridge.relay.inbound import chat_labels
from bridge.relay.renames import SessionRename
from bridge.slack.actions import parse_click
from bridge.slack.blocks import ButtonAction
from bridge.slack.events import (
    installation_team,
    parse_deletion,
    parse_message,
    parse_session_rename,
    parse_session_stop,
    plain_text,
)
from tests.slack_payloads import payload


def body(**event: Any) -> dict[str, Any]:
    base = {
        "type": "message",
        "channel": "C1",
        "user": "U1",
        "text": "hi",
        "ts": "1.000001",
        "channel_type": "channel",
    }
    return {"type": "event_callback", "team_id": "T1", "event_id": "Ev1", "event": {**base, **event}}


def test_mention_in_a_channel() -> None:
    """An app_mention is a message that may start a chat; its thread is its own ts."""
    message = parse_message(body(type="app_mention", text="<@UBOT> fix it"))
    assert message is not None
    assert message.mentioned
    assert not message.direct
    assert message.root_ts == "1.000001"


def test_thread_reply_and_dm() -> None:
    """A reply belongs to its thread's root; a DM is direct."""
    reply = parse_message(body(thread_ts="0.5"))
    assert reply is not None
    assert reply.root_ts == "0.5"
    dm = parse_message(body(channel="D1", channel_type="im"))
    assert dm is not None
    assert dm.direct


@pytest.mark.parametrize(
    "event",
    [
        {"bot_id": "B1"},
        {"subtype": "bot_message"},
        {"subtype": "message_changed"},
        {"subtype": "message_deleted"},
        {"subtype": "channel_join"},
    ],
)
def test_not_a_persons_message(event: dict[str, Any]) -> None:
    """Bot posts, edits, deletions and system messages are not relayed as messages."""
    assert parse_message(body(**event)) is None


@pytest.mark.parametrize("missing", ["channel", "user", "ts"])
def test_malformed_event_is_dropped(missing: str) -> None:
    """An event without a channel, user or ts is dropped (and logged), never raised."""
    payload = body()
    del payload["event"][missing]
    assert parse_message(payload) is None


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
        max_leaves=30,
    )
)
def test_arbitrary_payloads_never_raise(payload: Any) -> None:
    """Whatever arrives, parsing returns a message or None."""
    parse_message(payload if isinstance(payload, dict) else {"event": payload})


def test_strip_mention_keeps_other_mentions() -> None:
    """Only the bot's own mention is removed from the prompt."""
    assert strip_mention("<@UBOT> ask <@U2> about <@UBOT|bot> it", "UBOT") == "ask <@U2> about  it"


def test_labels_name_the_slack_origin() -> None:
    """Chats carry slack_team, slack_channel, slack_thread (root ts) and slack_user."""
    message = parse_message(body(thread_ts="0.5"))
    assert message is not None
    assert chat_labels(message) == {
        "slack_team": "T1",
        "slack_channel": "C1",
        "slack_thread": "0.5",
        "slack_user": "U1",
    }


def test_edit_carries_the_new_content_and_the_old_text() -> None:
    """A message_changed is the edited message (its own ts, thread and files) flagged as an edit."""
    changed = body(
        subtype="message_changed",
        user=None,
        message={"user": "U1", "text": "new", "ts": "1.5", "thread_ts": "1.0", "files": [{"id": "F1"}]},
        previous_message={"user": "U1", "text": "old", "ts": "1.5"},
    )
    edit = parse_message(changed)
    assert edit is not None
    assert (edit.edited, edit.ts, edit.root_ts, edit.text, edit.previous_text) == (
        True,
        "1.5",
        "1.0",
        "new",
        "old",
    )
    assert [f.id for f in edit.files] == ["F1"]


@pytest.mark.parametrize(
    "message",
    [
        {"user": "U1", "text": "same", "ts": "1.5"},  # an unfurl: the text did not change
        {"bot_id": "B1", "text": "bot edit", "ts": "1.5"},
        {"user": "U1", "text": "x", "ts": "1.5", "subtype": "tombstone"},
    ],
)
def test_changes_that_are_not_a_persons_edit_are_ignored(message: dict[str, Any]) -> None:
    """Unfurls, bot edits and tombstones are not edits to relay."""
    changed = body(subtype="message_changed", message=message, previous_message={"text": "same"})
    assert parse_message(changed) is None


def test_deletion_names_the_deleted_message_and_its_thread() -> None:
    """A message_deleted becomes a deletion of ``deleted_ts`` in the previous message's thread."""
    deleted = body(
        subtype="message_deleted", deleted_ts="1.5", previous_message={"text": "x", "thread_ts": "1.0"}
    )
    deletion = parse_deletion(deleted)
    assert deletion is not None
    assert (deletion.ts, deletion.root_ts, deletion.channel_id) == ("1.5", "1.0", "C1")
    assert parse_deletion(body()) is None


def _click(action_id: str, value: str) -> dict[str, object]:
    return {
        "type": "block_actions",
        "user": {"id": "U1"},
        "actions": [{"type": "button", "action_id": action_id, "value": value, "action_ts": "1.5"}],
    }


def test_clicks_on_control_buttons_are_parsed() -> None:
    """A control button's click names its chat (and queued message); its id comes from user and time."""
    stop = parse_click(_click("chat_stop", "c-1"))
    assert stop == Click("click:U1:1.5", "U1", ButtonAction.CHAT_STOP, "c-1")
    promote = parse_click(_click("queued_send_next", "c-1:42"))
    assert promote is not None
    assert (promote.chat_id, promote.queued_id) == ("c-1", 42)


def test_clicks_on_a_question_or_a_plan_name_the_call() -> None:
    """An answer's button names its chat, the tool call it answers and the answer's place; a plan's
    buttons name the chat and the call; a value that names no call (or no answer) is dropped."""
    answer = parse_click(_click("question_answer:1", "c-1:toolu_9:1"))
    assert answer == Click(
        "click:U1:1.5", "U1", ButtonAction.QUESTION_ANSWER, "c-1", call_id="toolu_9", option=1
    )
    approve = parse_click(_click("plan_approve", "c-1:toolu_3"))
    assert approve is not None
    assert (approve.action, approve.call_id) == (ButtonAction.PLAN_APPROVE, "toolu_3")
    assert parse_click(_click("question_answer:0", "c-1:toolu_9")) is None
    assert parse_click(_click("plan_revise", "c-1")) is None
    assert parse_click(_click("chat_stop:2", "c-1")) is not None, "an index on another button is ignored"


def test_other_and_malformed_clicks_are_not_controls() -> None:
    """Open in Coder, foreign buttons, bad queued values and missing fields are no control."""
    assert parse_click(_click("chat_open", "")) is None
    assert parse_click(_click("somebody_elses", "x")) is None
    assert parse_click(_click("queued_remove", "c-1")) is None
    assert parse_click(_click("queued_remove", "c-1:x")) is None
    assert parse_click(_click("chat_stop", "")) is None
    assert parse_click({"type": "view_submission"}) is None


def test_session_stop_and_malformed_ones() -> None:
    """agent_session_stopped names who stopped which thread; one without its thread is dropped."""
    event = {"type": "agent_session_stopped", "user": "U1", "channel": "C1", "thread_ts": "1.000001"}
    stop = parse_session_stop({"event_id": "Ev9", "event": {**event, "streaming_message_ts": []}})
    assert stop == SessionStop(event_id="Ev9", user_id="U1", channel_id="C1", thread_ts="1.000001")
    assert parse_session_stop({"event_id": "Ev9", "event": {**event, "thread_ts": None}}) is None
    assert parse_session_stop(body()) is None


def test_session_rename_and_malformed_ones() -> None:
    """agent_session_title_changed names who gave which thread which title (the team from the event or,
    failing that, the envelope); one without a title or a thread is dropped."""
    event = {
        "type": "agent_session_title_changed",
        "user": "U1",
        "team_id": "T2",
        "channel": "C1",
        "thread_ts": "1.000001",
        "title": "Auth test fix",
        "previous_title": "Fix flaky auth test",
    }
    rename = parse_session_rename({"team_id": "T1", "event_id": "Ev9", "event": event})
    assert rename == SessionRename("Ev9", "U1", "T2", "C1", "1.000001", "Auth test fix")
    without_team = {k: v for k, v in event.items() if k != "team_id"}
    assert parse_session_rename({"team_id": "T1", "event_id": "Ev9", "event": without_team}) == SessionRename(
        "Ev9", "U1", "T1", "C1", "1.000001", "Auth test fix"
    )
    assert parse_session_rename({"event_id": "Ev9", "event": {**event, "title": None}}) is None
    assert parse_session_rename({"event_id": "Ev9", "event": {**event, "thread_ts": ""}}) is None
    assert parse_session_rename(body()) is None


def test_a_shared_channel_event_names_the_installation_team() -> None:
    """In a Slack Connect channel the outer team is where the act came from; the thread's team is the
    installation's, as Bolt reads it (bolt-python's shared-channel payload)."""
    shared = payload("shared_channel_reaction_added")
    assert shared["team_id"] == "T_SOURCE"
    assert installation_team(shared) == "T_INSTALLED"
    assert installation_team({"team_id": "T1", "authorizations": []}) == "T1"


def test_a_partners_message_in_a_shared_channel_is_looked_up_in_the_installation() -> None:
    """A message from another organisation carries its team outside; the command names the bridge's."""
    shared = body(team="T_SOURCE", user_team="T_SOURCE", source_team="T_SOURCE")
    shared["team_id"] = "T_SOURCE"
    shared["authorizations"] = payload("shared_channel_reaction_added")["authorizations"]
    message = parse_message(shared)
    assert message is not None
    assert message.team_id == "T_INSTALLED"


def test_a_tombstoned_root_is_its_deletion() -> None:
    """A root deleted while it has replies arrives as message_changed with a tombstone (vercel/chat's
    payload): it is that message's deletion, in its own thread, and no edit."""
    tombstone = payload("message_changed_tombstone")
    tombstone["event_id"] = "Ev0TOMB"  # the adapter test leaves the envelope's id out
    assert parse_message(tombstone) is None
    deletion = parse_deletion(tombstone)
    assert deletion is not None
    root = "1778050260.824689"
    assert (deletion.ts, deletion.root_ts, deletion.team_id) == (root, root, "T123")


@pytest.mark.parametrize(
    ("escaped", "typed"),
    [
        ("if a &lt; b &amp;&amp; c &gt; d", "if a < b && c > d"),
        ("&amp;lt; is how Slack writes &lt;", "&lt; is how Slack writes <"),
        ("<@U1> &quot;as is&quot; &#39;too&#39;", "<@U1> &quot;as is&quot; &#39;too&#39;"),
    ],
)
def test_message_text_reaches_the_agent_as_typed(escaped: str, typed: str) -> None:
    """Slack escapes ``&``, ``<`` and ``>`` in message text, nothing else; the agent gets what was typed."""
    assert plain_text(escaped) == typed
    message = parse_message(body(text=escaped))
    assert message is not None
    assert message.text == typed
