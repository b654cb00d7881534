"""Bolt middleware and listeners: Slack events become relay commands, acknowledged at once.

Bolt verifies signatures before anything is parsed. A middleware records each event the bridge
will act on (``Intake``), and each click on a control button (``slack.actions``), before Bolt
acknowledges it, and a retry finds it recorded; listeners then hand fresh ones over in the
background, so a slow Coder can never make Slack retry. Every other slash command and interaction
is recorded by its trigger id: a replay of its signed request within Slack's five minutes is
acknowledged and goes no further (a second ``/coder new`` would start a second chat). Malformed
payloads are logged and dropped here.

As Slack sends them: an event names its thread's team by the installation it was delivered to
(``authorizations[0].team_id``, as Bolt does), since in a Slack Connect channel the outer
``team_id`` is the team the message or reaction came from; message text arrives with ``&``, ``<``
and ``>`` escaped, and reaches the agent as the person typed it; a thread's root deleted while it
has replies arrives as a ``message_changed`` whose message is a ``tombstone`` and is handled as that
message's deletion (the agent keeps what it got, the thread goes on, and says so).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse

from bridge.metrics import Metrics
from bridge.relay.controls import Click, Controls, Reaction, SessionStop
from bridge.relay.inbound import Inbound, IncomingMessage, MessageDeletion
from bridge.relay.intake import Intake
from bridge.relay.renames import Renames, SessionRename
from bridge.slack import actions
from bridge.slack.files import parse_files
from bridge.slack.routing import workspace_of
from bridge.slack.workspaces import acting_for

log = logging.getLogger(__name__)

_RELAYED_SUBTYPES = {None, "file_share", "thread_broadcast"}
_MESSAGE_EVENTS = {"message", "app_mention"}
_FRESH = "bridge_fresh_command"  # context key: the command of an event recorded for the first time
_INTERACTIONS = frozenset({"block_actions", "view_submission", "message_action", "shortcut"})
_ENTITY = re.compile(r"&(amp|lt|gt);")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">"}


def plain_text(text: str) -> str:
    """Message text as the person typed it: Slack escapes ``&``, ``<`` and ``>`` (its ``<…>`` are
    control sequences), and nothing else. One pass, so ``&amp;lt;`` stays ``&lt;``."""
    return _ENTITY.sub(lambda m: _ENTITIES[m.group(1)], text)


def installation_team(body: Mapping[str, Any]) -> str | None:
    """The team of the installation the event was delivered to (``authorizations[0].team_id``, as
    Bolt reads it: slack_bolt/request/internals.py); for an org-wide install, whose authorization
    names no team, the workspace it saw the event in (``context_team_id``); the outer ``team_id``
    when there is neither."""
    authorizations = body.get("authorizations")
    if isinstance(authorizations, list) and authorizations and isinstance(authorizations[0], Mapping):
        team = authorizations[0].get("team_id")
        if isinstance(team, str) and team:
            return team
    for field in ("context_team_id", "team_id"):
        team = body.get(field)
        if isinstance(team, str) and team:
            return team
    return None


def _person_message(
    body: Mapping[str, Any], event: Mapping[str, Any], message: Mapping[str, Any], *, edited: bool
) -> IncomingMessage | None:
    """``message`` (the event itself, or the edited message inside a ``message_changed``) as a command."""
    fields = {"channel": event.get("channel"), "user": message.get("user"), "ts": message.get("ts")}
    event_id = body.get("event_id")
    team_id = installation_team(body) or message.get("team") or event.get("team")
    if not all(isinstance(v, str) and v for v in (*fields.values(), event_id, team_id)):
        log.warning("dropping a malformed %s event (event_id=%r)", event.get("type"), event_id)
        return None
    thread_ts = message.get("thread_ts")
    text = message.get("text")
    return IncomingMessage(
        event_id=str(event_id),
        team_id=str(team_id),
        channel_id=str(fields["channel"]),
        user_id=str(fields["user"]),
        text=plain_text(text) if isinstance(text, str) else "",
        ts=str(fields["ts"]),
        thread_ts=thread_ts if isinstance(thread_ts, str) and thread_ts else None,
        mentioned=event.get("type") == "app_mention",
        direct=event.get("channel_type") == "im",
        files=parse_files(message.get("files")),
        edited=edited,
        previous_text=_previous_text(event) if edited else "",
    )


def _previous_text(event: Mapping[str, Any]) -> str:
    previous = event.get("previous_message")
    text = previous.get("text") if isinstance(previous, Mapping) else None
    return plain_text(text) if isinstance(text, str) else ""


def parse_message(body: Mapping[str, Any]) -> IncomingMessage | None:
    """A person's message (new, or edited) from an ``app_mention`` or ``message`` callback, or None.

    Bot posts (including our own), deletions and other subtypes are not relayed as messages. An
    edit that leaves the text alone (Slack reports link unfurls as ``message_changed`` too) is none.
    """
    event = body.get("event")
    if not isinstance(event, Mapping) or event.get("bot_id") or event.get("type") not in _MESSAGE_EVENTS:
        return None
    subtype = event.get("subtype")
    if subtype in _RELAYED_SUBTYPES:
        return _person_message(body, event, event, edited=False)
    if subtype != "message_changed":
        return None
    message, previous = event.get("message"), event.get("previous_message")
    if (
        not isinstance(message, Mapping)
        or message.get("bot_id")
        or message.get("subtype") not in _RELAYED_SUBTYPES
    ):
        return None
    if isinstance(previous, Mapping) and previous.get("text") == message.get("text"):
        return None
    return _person_message(body, event, message, edited=True)


def parse_deletion(body: Mapping[str, Any]) -> MessageDeletion | None:
    """A deleted message from a ``message_deleted`` callback, or from the ``message_changed`` that
    turns a thread's root into a tombstone (deleted while it has replies), or None."""
    event = body.get("event")
    if not isinstance(event, Mapping):
        return None
    changed = event.get("message")
    if event.get("subtype") == "message_deleted":
        deleted_ts = event.get("deleted_ts")
    elif (
        event.get("subtype") == "message_changed"
        and isinstance(changed, Mapping)
        and changed.get("subtype") == "tombstone"
    ):
        deleted_ts = changed.get("ts")
    else:
        return None
    previous = event.get("previous_message")
    if not isinstance(previous, Mapping) or previous.get("bot_id"):
        return None
    values = (body.get("event_id"), installation_team(body), event.get("channel"), deleted_ts)
    if not all(isinstance(v, str) and v for v in values):
        log.warning("dropping a malformed %s event (event_id=%r)", event.get("subtype"), body.get("event_id"))
        return None
    event_id, team_id, channel, ts = (str(v) for v in values)
    thread_ts = previous.get("thread_ts")
    return MessageDeletion(
        event_id=event_id,
        team_id=team_id,
        channel_id=channel,
        ts=ts,
        thread_ts=thread_ts if isinstance(thread_ts, str) and thread_ts else None,
    )


def parse_reaction(body: Mapping[str, Any]) -> Reaction | None:
    """A reaction on a message from ``reaction_added`` / ``reaction_removed``, or None."""
    event = body.get("event")
    if not isinstance(event, Mapping):
        return None
    item = event.get("item")
    if not isinstance(item, Mapping) or item.get("type") != "message":
        return None
    values = (
        body.get("event_id"),
        event.get("user"),
        item.get("channel"),
        item.get("ts"),
        event.get("reaction"),
    )
    if not all(isinstance(v, str) and v for v in values):
        log.warning("dropping a malformed %s event (event_id=%r)", event.get("type"), body.get("event_id"))
        return None
    event_id, user, channel, ts, name = (str(v) for v in values)
    return Reaction(
        event_id=event_id,
        user_id=user,
        channel_id=channel,
        item_ts=ts,
        name=name,
        added=event.get("type") == "reaction_added",
    )


def parse_session_stop(body: Mapping[str, Any]) -> SessionStop | None:
    """A click on an Agent Session's Stop button from ``agent_session_stopped``, or None."""
    event = body.get("event")
    if not isinstance(event, Mapping) or event.get("type") != "agent_session_stopped":
        return None
    values = (body.get("event_id"), event.get("user"), event.get("channel"), event.get("thread_ts"))
    if not all(isinstance(v, str) and v for v in values):
        log.warning("dropping a malformed agent_session_stopped event (event_id=%r)", body.get("event_id"))
        return None
    event_id, user, channel, thread_ts = (str(v) for v in values)
    return SessionStop(event_id=event_id, user_id=user, channel_id=channel, thread_ts=thread_ts)


def parse_session_rename(body: Mapping[str, Any]) -> SessionRename | None:
    """A person's new title for an Agent Session from ``agent_session_title_changed``, or None."""
    event = body.get("event")
    if not isinstance(event, Mapping) or event.get("type") != "agent_session_title_changed":
        return None
    team_id = event.get("team_id") or body.get("team_id")
    values = (body.get("event_id"), event.get("user"), team_id, event.get("channel"), event.get("thread_ts"))
    title = event.get("title")
    if not all(isinstance(v, str) and v for v in values) or not isinstance(title, str):
        log.warning(
            "dropping a malformed agent_session_title_changed event (event_id=%r)", body.get("event_id")
        )
        return None
    event_id, user, team, channel, thread_ts = (str(v) for v in values)
    return SessionRename(event_id, user, team, channel, thread_ts, title)


Command = IncomingMessage | MessageDeletion | Reaction | Click | SessionStop | SessionRename


def request_key(body: Mapping[str, Any]) -> str | None:
    """The durable key of a slash command or an interaction (which carry no event id): its
    ``trigger_id``, new at every invocation and the same in a replay of its signed request. Hashed,
    as trigger ids are long and the key shares the event id's column."""
    if "command" not in body and body.get("type") not in _INTERACTIONS:
        return None
    trigger = body.get("trigger_id")
    if not isinstance(trigger, str) or not trigger:
        return None
    return "request:" + hashlib.sha256(trigger.encode()).hexdigest()[:48]


def _command(body: Mapping[str, Any], controls: Controls) -> Command | None:
    """What the bridge will act on in a callback or a click, if anything (nothing else is recorded)."""
    command = (
        parse_message(body)
        or parse_deletion(body)
        or parse_session_stop(body)
        or parse_session_rename(body)
        or actions.parse_click(body)
    )
    if command is not None:
        return command
    reaction = parse_reaction(body)
    return reaction if reaction is not None and controls.wanted(reaction) else None


def _dispatch(command: Command, inbound: Inbound, controls: Controls, renames: Renames) -> None:
    if isinstance(command, Reaction | Click):
        controls.submit(command)
    elif isinstance(command, SessionStop):
        controls.stop_session(command)
    elif isinstance(command, SessionRename):
        renames.submit(command)
    else:
        inbound.submit(command)


def register(
    app: AsyncApp, intake: Intake, inbound: Inbound, controls: Controls, metrics: Metrics, *, renames: Renames
) -> None:
    """Attach the bridge's middleware, event listeners and button listeners to a Bolt app."""

    async def record(
        body: dict[str, Any], context: dict[str, Any], next: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        # Runs before Bolt acknowledges: an event Slack considers delivered is already durable.
        command = _command(body, controls)
        if command is not None:
            if await intake.record(command.event_id, body):
                context[_FRESH] = command
        elif (key := request_key(body)) is not None and not await intake.first(key):
            log.info("acknowledging a replayed %s and ignoring it", body.get("command") or body.get("type"))
            return BoltResponse(status=200, body="")
        await next()
        return None

    app.use(record)

    async def act(body: dict[str, Any], context: dict[str, Any]) -> None:
        event = body.get("event") or {}
        metrics.slack_events.labels(str(event.get("type") or body.get("type") or "unknown")).inc()
        command = context.get(_FRESH)
        if command is not None:
            _dispatch(command, inbound, controls, renames)

    for name in (
        "app_mention",
        "message",
        "reaction_added",
        "reaction_removed",
        "agent_session_stopped",
        "agent_session_title_changed",
    ):
        app.event(name)(act)
    actions.register(app, act)


async def recover(intake: Intake, inbound: Inbound, controls: Controls, *, renames: Renames) -> int:
    """Hand over again the events and clicks acknowledged but not handled before the last stop."""
    count = 0
    for body in await intake.unfinished():
        command = _command(body, controls)
        if command is None:
            continue
        with acting_for(workspace_of(body)):  # the tasks it starts act for the event's workspace
            _dispatch(command, inbound, controls, renames)
        count += 1
    return count
