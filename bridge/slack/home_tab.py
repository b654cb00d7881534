"""The App Home tab's Slack side: ``views.publish`` for the relay, and the ``app_home_opened`` listener."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bridge.metrics import Metrics
from bridge.relay.home import Home
from bridge.slack.poster import slack_call


class WebHomeTab:
    """``HomeTab`` over slack-sdk: failures sorted into the ``SlackError`` tree like every other call."""

    def __init__(self, client: AsyncWebClient, metrics: Metrics) -> None:
        self._client = client
        self._metrics = metrics

    async def publish(self, user_id: str, view: Mapping[str, Any]) -> None:
        """Replace the person's Home view (no ``hash``: the newest rendering always wins)."""
        publish = self._client.views_publish
        await slack_call(self._metrics, "views.publish", lambda: publish(user_id=user_id, view=dict(view)))


def register(app: AsyncApp, home: Home, metrics: Metrics) -> None:
    """Publish a person's Home when they open the tab (Bolt acknowledges the event itself)."""

    async def opened(event: dict[str, Any]) -> None:
        metrics.slack_events.labels("app_home_opened").inc()
        user = event.get("user")
        if event.get("tab") == "home" and isinstance(user, str) and user:
            home.opened(user)

    app.event("app_home_opened")(opened)
