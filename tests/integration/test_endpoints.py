"""HTTP endpoints and Slack transports of a running bridge: signatures, health, metrics, Socket Mode."""

from __future__ import annotations

import logging

import httpx
import pytest
from pydantic import SecretStr

from bridge.logs import configure
from tests.integration.conftest import CODER_TOKEN, SIGNING_SECRET, World


def _url(world: World, path: str) -> str:
    assert world.bridge is not None
    return f"http://127.0.0.1:{world.bridge.port}{path}"


@pytest.mark.parametrize(
    ("secret", "offset"),
    [("not-the-signing-secret", 0.0), (SIGNING_SECRET, -600.0)],
    ids=["wrong-signature", "stale-timestamp"],
)
async def test_badly_signed_events_are_rejected(world: World, secret: str, offset: float) -> None:
    """Events with a wrong signature or a replayed (stale) timestamp get 401 and reach no agent."""
    world.slack.retry_delays = (0.0, 0.0, 0.0)
    world.slack.signing_secret = secret
    world.slack.request_timestamp_offset = offset
    await world.slack.user_says(world.slack.alice, world.slack.general, f"<@{world.slack.bot_user_id}> hi")
    assert world.slack.deliveries
    assert {d.status for d in world.slack.deliveries} == {401}
    assert world.coder.chats == {}


async def test_unsigned_request_is_rejected(world: World) -> None:
    """A request without Slack's signature headers is refused before anything is parsed."""
    body = '{"type":"event_callback","event_id":"Ev1","team_id":"T0001","event":{"type":"app_mention"}}'
    async with httpx.AsyncClient() as client:
        response = await client.post(_url(world, "/slack/events"), content=body)
    assert response.status_code == 401
    assert world.coder.chats == {}


async def test_url_verification_is_answered(world: World) -> None:
    """Saving the Request URL in Slack's app config succeeds (Bolt answers the challenge)."""
    delivery = await world.slack.deliver_event(
        {"type": "url_verification", "challenge": "c-123", "token": "t"}, wrap=False
    )
    assert delivery.status == 200
    assert "c-123" in (delivery.response_body or "")


async def test_health_readiness_and_metrics(world: World) -> None:
    """healthz is up, readyz reports ready, metrics count events, Slack and Coder calls and streams."""
    root = await world.mention("fix it")
    await world.until_idle_and_shown(root)
    async with httpx.AsyncClient() as client:
        health = await client.get(_url(world, "/healthz"))
        ready = await client.get(_url(world, "/readyz"))
        metrics = (await client.get(_url(world, "/metrics"))).text
    assert health.status_code == 200
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert 'bridge_slack_events_total{type="app_mention"}' in metrics
    assert 'bridge_slack_calls_total{method="chat.postMessage",outcome="ok"}' in metrics
    assert 'bridge_coder_calls_total{operation="create_chat",outcome="ok"}' in metrics
    assert "bridge_live_streams" in metrics


async def test_readyz_fails_while_shutting_down(world: World) -> None:
    """During shutdown readiness turns 503 with a reason, so a load balancer stops sending events."""
    assert world.bridge is not None
    bridge = world.bridge
    url = _url(world, "/readyz")
    bridge._accepting = False  # the first step of Bridge.stop(); observed from outside here
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    assert response.status_code == 503
    assert "not accepting" in response.json()["reasons"][0]


async def test_socket_mode_relays_events(world: World) -> None:
    """With an app-level token the bridge takes events over Socket Mode; no HTTP events endpoint."""
    await world.stop_bridge()
    await world.start_bridge(slack_app_token=SecretStr(world.slack.app_token))
    world.slack.event_url = None
    await world.until(lambda: world.slack.socket_connections == 1)
    root = await world.mention("fix it over the socket")
    await world.until_idle_and_shown(root)
    assert {d.transport for d in world.slack.deliveries} == {"socket_mode"}
    async with httpx.AsyncClient() as client:
        assert (await client.post(_url(world, "/slack/events"), content="{}")).status_code in (404, 405)


async def test_no_secret_in_debug_logs(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """A whole conversation logged at DEBUG, as `bridge serve` logs, never shows a token or secret."""
    root_logger = logging.getLogger()
    saved = (root_logger.handlers[:], root_logger.level)
    configure("DEBUG", "text", world.settings.secrets())
    try:
        root = await world.mention("fix the login bug")
        await world.until_idle_and_shown(root)
        await world.reply(root, "thanks")
        await world.until_idle_and_shown(root, turns=2)
    finally:
        root_logger.handlers[:], level = saved
        root_logger.setLevel(level)
    logged = capsys.readouterr().err
    if world.capabilities.replies_outlive_connection:  # a Coder without stream sockets has no handshake
        assert "Coder-Session-Token" in logged, "the websocket handshake was logged (and must be masked)"
    for secret in (world.slack.bot_token, CODER_TOKEN, SIGNING_SECRET):
        assert secret not in logged
