"""Bolt listeners for the bridge's buttons (``block_actions``): acknowledged at once, handled later.

A click is recorded by the same middleware as events (``slack.events``), before Bolt acknowledges
it, and handed to ``relay.controls``, which does what the matching reaction does: one path for the
policy's check, the chat's lookup and the answer. ``chat_open`` is a URL button: Slack opens Coder
in the browser and still sends the click, which only needs its acknowledgement (without one the
person sees a warning next to the button). Malformed payloads are logged and dropped here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from slack_bolt.async_app import AsyncApp

from bridge.relay.controls import Click
from bridge.slack.blocks import ButtonAction

log = logging.getLogger(__name__)

ACTION_IDS = re.compile("^(" + "|".join(re.escape(a.value) for a in ButtonAction) + r")(:\d+)?$")
"""A button's action id: a ``ButtonAction``, with ``:<n>`` for the n-th answer of a question."""


def parse_click(body: Mapping[str, Any]) -> Click | None:
    """A click on one of the bridge's control buttons, from a ``block_actions`` payload, or None."""
    if body.get("type") != "block_actions":
        return None
    actions, user = body.get("actions"), body.get("user")
    if not isinstance(actions, list) or len(actions) != 1 or not isinstance(actions[0], Mapping):
        return None
    action = actions[0]
    matched = ACTION_IDS.match(str(action.get("action_id")))
    if matched is None:
        return None
    button = ButtonAction(matched.group(1))
    if button is ButtonAction.CHAT_OPEN:
        return None
    user_id = user.get("id") if isinstance(user, Mapping) else None
    value, action_ts = action.get("value"), action.get("action_ts")
    if not all(isinstance(v, str) and v for v in (user_id, value, action_ts)):
        log.warning("dropping a malformed %s click", button)
        return None
    chat_id, queued_id = str(value), None
    if button.names_call:
        return _call_click(button, str(user_id), str(action_ts), chat_id)
    if button.names_queued:
        chat_id, _, queued = chat_id.rpartition(":")
        if not chat_id or not queued.isdigit():
            log.warning("dropping a %s click whose value is not <chat id>:<queued id>", button)
            return None
        queued_id = int(queued)
    return Click(
        event_id=f"click:{user_id}:{action_ts}",
        user_id=str(user_id),
        action=button,
        chat_id=chat_id,
        queued_id=queued_id,
    )


def _call_click(button: ButtonAction, user_id: str, action_ts: str, value: str) -> Click | None:
    """A click on a question's answer (value ``<chat id>:<call id>:<n>``) or a plan's button
    (``<chat id>:<call id>``)."""
    option = 0
    if button is ButtonAction.QUESTION_ANSWER:
        value, _, index = value.rpartition(":")
        if not index.isdigit():
            log.warning("dropping a %s click whose value names no answer", button)
            return None
        option = int(index)
    chat_id, _, call_id = value.partition(":")
    if not chat_id or not call_id:
        log.warning("dropping a %s click whose value is not <chat id>:<call id>", button)
        return None
    return Click(
        event_id=f"click:{user_id}:{action_ts}",
        user_id=user_id,
        action=button,
        chat_id=chat_id,
        call_id=call_id,
        option=option,
    )


def register(app: AsyncApp, handle: Callable[[dict[str, Any], dict[str, Any]], Awaitable[None]]) -> None:
    """Acknowledge every click on the bridge's buttons at once, then ``handle`` it (the events module's
    hand-over of what its middleware recorded)."""

    async def clicked(ack: Any, body: dict[str, Any], context: dict[str, Any]) -> None:
        await ack()
        await handle(body, context)

    app.action(ACTION_IDS)(clicked)
