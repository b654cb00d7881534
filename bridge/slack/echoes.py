"""The bot's own echoes, acknowledged before Bolt.

Slack sends the app a ``message`` event for every message the bot posts, a ``message_changed`` for
every edit it makes, and a ``reaction_added`` / ``reaction_removed`` for each of its reactions: in
the 1,000-chat benchmark, 17 deliveries a chat, nine in ten of all it received. The bridge acts on
none of them, yet each went through Bolt's whole pipeline (request object, middleware chain,
listener matching, acknowledgement): CPU that made a burst of people's mentions wait longer than
Slack's 3 s for their acknowledgement, so Slack retried them. An echo is still verified like any
request, then acknowledged here and goes no further; anything else goes to Bolt, which verifies it
again and decides.

Each installation has a bot of its own (installed through OAuth into many workspaces, each
workspace's bot user and bot id differ), and Slack names the one an event is delivered to in the
event itself: ``authorizations[0]`` is the receiving installation's bot user, and the app's messages
carry its ``app_id`` beside their ``bot_id``. So an echo is told from the payload, in every
workspace, with no look-up; the configured bot (``SLACK_BOT_TOKEN``'s, from ``auth.test``) is
recognised as before.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from slack_sdk.signature import SignatureVerifier

_EDITS = {"message_changed": "message", "message_deleted": "previous_message"}
"""Subtypes that carry the message they are about, and the key it is under."""


def _receiving_bot(payload: Mapping[str, Any]) -> str:
    """The bot user of the installation the event was delivered to (``authorizations[0]``), or ""."""
    authorizations = payload.get("authorizations")
    if not isinstance(authorizations, list) or not authorizations:
        return ""
    first = authorizations[0]
    if not isinstance(first, Mapping) or first.get("is_bot") is not True:
        return ""
    user = first.get("user_id")
    return user if isinstance(user, str) else ""


def is_echo(payload: Any, *, bot_user_id: str = "", bot_id: str = "") -> bool:
    """Whether an Events API payload is about the bot's own doing: its message, its edit or deletion
    of one, or its reaction; the bot is the configured one or the receiving installation's."""
    event = payload.get("event") if isinstance(payload, Mapping) else None
    if not isinstance(event, Mapping) or payload.get("type") != "event_callback":
        return False
    bots = {user for user in (bot_user_id, _receiving_bot(payload)) if user}
    kind = event.get("type")
    if kind in ("reaction_added", "reaction_removed"):
        return event.get("user") in bots
    if kind != "message":
        return False
    subject = event.get(_EDITS[event["subtype"]]) if event.get("subtype") in _EDITS else event
    if not isinstance(subject, Mapping):
        return False
    app = payload.get("api_app_id")
    by_bot = subject.get("bot_id")
    ours = bool(by_bot) and (by_bot == bot_id or (bool(app) and subject.get("app_id") == app))
    return ours or subject.get("user") in bots


class EchoFilter:
    """Tells a signed delivery of one of the bot's echoes (see the module's docstring)."""

    def __init__(self, signing_secret: str, *, bot_user_id: str = "", bot_id: str = "") -> None:
        self._verifier = SignatureVerifier(signing_secret)
        self._bot_user_id = bot_user_id
        self._bot_id = bot_id

    def is_echo(self, body: bytes, headers: Mapping[str, str]) -> bool:
        """True only for a validly signed JSON event about the bot's own doing."""
        if not body.startswith(b"{"):  # interactions and commands come form-encoded
            return False
        try:
            signed = self._verifier.is_valid(
                body=body,
                timestamp=headers.get("X-Slack-Request-Timestamp", ""),
                signature=headers.get("X-Slack-Signature", ""),
            )
            payload = json.loads(body) if signed else None
        except ValueError:  # a body that is no JSON (Bolt answers it), a timestamp that is no number
            return False
        return is_echo(payload, bot_user_id=self._bot_user_id, bot_id=self._bot_id)
