"""``AgentSessions`` over slack-sdk: ``agents.sessions.setStatus`` and ``agents.sessions.rename``.

A session's title is the chat's, which the agent or a person wrote: it is sent ``quoted``, so it
can notify nobody.
"""

from __future__ import annotations

import logging

from slack_sdk.web.async_client import AsyncWebClient

from bridge.metrics import Metrics
from bridge.slack.defuse import quoted
from bridge.slack.poster import slack_call

log = logging.getLogger(__name__)

NO_STOP_SUBSCRIPTION = "missing_agent_session_stopped_event_subscription"


class WebSessions:
    """Sets a thread's session status and title; Slack's errors sorted like every other call's."""

    def __init__(self, client: AsyncWebClient, metrics: Metrics) -> None:
        self._client = client
        self._metrics = metrics
        self._warned = False

    async def set_status(
        self, channel: str, thread_ts: str, status: str, *, title: str | None, initiator: str | None
    ) -> None:
        """Create or update the session; a missing Stop subscription is worth one warning."""
        response = await slack_call(
            self._metrics,
            "agents.sessions.setStatus",
            lambda: self._client.agents_sessions_setStatus(
                channel_id=channel,
                thread_ts=thread_ts,
                status=status,
                title=quoted(title) if title is not None else None,
                initiator_user_id=initiator,
            ),
        )
        if response.get("warning") == NO_STOP_SUBSCRIPTION and not self._warned:
            self._warned = True
            log.warning(
                "Slack shows no Stop button on agent sessions: subscribe the app to the "
                "agent_session_stopped event (see manifest.yml)"
            )

    async def rename(self, channel: str, thread_ts: str, title: str) -> None:
        """Change the session's title."""
        await slack_call(
            self._metrics,
            "agents.sessions.rename",
            lambda: self._client.agents_sessions_rename(
                channel_id=channel, thread_ts=thread_ts, title=quoted(title)
            ),
        )
