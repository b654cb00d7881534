"""Bolt middleware and listeners: Slack events become relay commands, acknowledged at once.

Bolt verifies signatures before anything is parsed. A middleware records each event the bridge
will act on (``Intake``) before Bolt acknowledges it, and a retry finds it recorded; listeners then
hand fresh ones over in the background, so a slow Coder can never make Slack retry. Malformed
payloads are logged and dropped here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from slack_bolt.async_app import AsyncApp

from bridge.metrics import Metrics
from bridge.relay.controls import Controls, Reaction
from bridge.relay.inbound import Inbound, IncomingMessage
from bridge.relay.intake import Intake

log = logging.getLogger(__name__)

_RELAYED_SUBTYPES = {None, "file_share", "thread_broadcast"}
_FRESH = "bridge_fresh_command"  # context key: the command of an event recorded for the first time


def parse_message(body: Mapping[str, Any]) -> IncomingMessage | None:
    """A person's message from an ``app_mention`` or ``message`` callback, or None when it is not one.

    Bot posts (including our own), edits, deletions and other subtypes are not relayed as messages.
    """
    event = body.get("event")
    if not isinstance(event, Mapping):
        return None
    if event.get("bot_id") or event.get("subtype") not in _RELAYED_SUBTYPES:
        return None
    fields = {name: event.get(name) for name in ("channel", "user", "ts")}
    event_id = body.get("event_id")
    team_id = body.get("team_id") or event.get("team")
    if not all(isinstance(v, str) and v for v in (*fields.values(), event_id, team_id)):
        log.warning("dropping a malformed %s event (event_id=%r)", event.get("type"), event_id)
        return None
    thread_ts = event.get("thread_ts")
    text = event.get("text")
    return IncomingMessage(
        event_id=str(event_id),
        team_id=str(team_id),
        channel_id=str(fields["channel"]),
        user_id=str(fields["user"]),
        text=text if isinstance(text, str) else "",
        ts=str(fields["ts"]),
        thread_ts=thread_ts if isinstance(thread_ts, str) and thread_ts else None,
        mentioned=event.get("type") == "app_mention",
        direct=event.get("channel_type") == "im",
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


Command = IncomingMessage | Reaction


def _command(body: Mapping[str, Any], controls: Controls) -> Command | None:
    """What the bridge will act on in a callback, if anything (nothing else is recorded)."""
    message = parse_message(body)
    if message is not None:
        return message
    reaction = parse_reaction(body)
    return reaction if reaction is not None and controls.wanted(reaction) else None


def _dispatch(command: Command, inbound: Inbound, controls: Controls) -> None:
    if isinstance(command, Reaction):
        controls.submit(command)
    else:
        inbound.submit(command)


def register(app: AsyncApp, intake: Intake, inbound: Inbound, controls: Controls, metrics: Metrics) -> None:
    """Attach the bridge's middleware and event listeners to a Bolt app."""

    async def record(
        body: dict[str, Any], context: dict[str, Any], next: Callable[[], Awaitable[None]]
    ) -> None:
        # Runs before Bolt acknowledges: an event Slack considers delivered is already durable.
        command = _command(body, controls)
        if command is not None and await intake.record(command.event_id, body):
            context[_FRESH] = command
        await next()

    app.use(record)

    async def act(body: dict[str, Any], context: dict[str, Any]) -> None:
        event = body.get("event") or {}
        metrics.slack_events.labels(str(event.get("type", "unknown"))).inc()
        command = context.get(_FRESH)
        if command is not None:
            _dispatch(command, inbound, controls)

    for name in ("app_mention", "message", "reaction_added", "reaction_removed"):
        app.event(name)(act)


async def recover(intake: Intake, inbound: Inbound, controls: Controls) -> int:
    """Hand over again the events acknowledged but not handled before the last stop."""
    count = 0
    for body in await intake.unfinished():
        command = _command(body, controls)
        if command is None:
            continue
        _dispatch(command, inbound, controls)
        count += 1
    return count
