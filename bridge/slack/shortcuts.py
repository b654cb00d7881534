"""Message shortcuts: "Stop and send this instead" (callback ``send_now``) on a queued follow-up.

Acknowledged at once (Slack wants it within 3 seconds); the work runs in ``relay.controls``, which
applies the access policy and answers a refusal privately. Shortcuts are not events: Slack does
not retry them, so nothing is recorded before the acknowledgement.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp

from bridge.relay.controls import Controls

log = logging.getLogger(__name__)

SEND_NOW = "send_now"


def register(app: AsyncApp, controls: Controls) -> None:
    """Attach the message shortcuts to a Bolt app."""

    async def send_now(ack: Any, shortcut: dict[str, Any]) -> None:
        await ack()
        user = (shortcut.get("user") or {}).get("id")
        channel = (shortcut.get("channel") or {}).get("id")
        ts = shortcut.get("message_ts") or (shortcut.get("message") or {}).get("ts")
        request = shortcut.get("trigger_id") or shortcut.get("action_ts")
        if not all(isinstance(v, str) and v for v in (user, channel, ts, request)):
            log.warning("dropping a malformed %s shortcut", SEND_NOW)
            return
        controls.send_now(str(user), str(channel), str(ts), str(request))

    app.shortcut(SEND_NOW)(send_now)
