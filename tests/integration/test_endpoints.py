"""HTTP endpoints and Slack transports of a running bridge: signatures, health, metrics, Socket Mode."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from urllib.parse import urlencode

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from bridge.db import repo
from bridge.logs import configure
from bridge.sim.sender import signed_headers
from tests.integration.conftest import CODER_TOKEN, SIGNING_SECRET, World


def _url(world: World, path: str) -> str:
    assert world.bridge is not None
    return f"http://127.0.0.1:{world.bridge.port}{path}"


def _request(world: World, kind: str) -> tuple[bytes, str]:
    """A body Slack would send for ``kind``, and its content type; each would make the bridge act."""
    if kind == "events":
        event = {
            "type": "app_mention",
            "user": world.slack.alice,
            "text": f"<@{world.slack.bot_user_id}> fix it",
            "ts": "1700000000.000100",
            "channel": world.slack.general,
            "event_ts": "1700000000.000100",
        }
        body = {
            "type": "event_callback",
            "event_id": "Ev0FORGED",
            "team_id": world.slack.team_id,
            "event": event,
        }
        return json.dumps(body).encode(), "application/json"
    if kind == "slash_commands":
        fields = {
            "command": "/coder",
            "text": "help",
            "team_id": world.slack.team_id,
            "channel_id": world.slack.general,
            "user_id": world.slack.alice,
            "trigger_id": "1.2.forged",
            "response_url": f"{world.slack.base_url}/response_url/forged",
        }
        return urlencode(fields).encode(), "application/x-www-form-urlencoded"
    view = {
        "id": "V0FORGED",
        "type": "modal",
        "callback_id": "coder_link",
        "state": {"values": {"token": {"token": {"value": "x"}}}},
    }
    payload = {
        "type": "view_submission",
        "trigger_id": "1.2.forged-view",
        "team": {"id": world.slack.team_id},
        "user": {"id": world.slack.alice, "team_id": world.slack.team_id},
        "view": view,
    }
    return urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded"


def _headers(body: bytes, content_type: str, fault: str) -> dict[str, str | bytes]:
    now = int(time.time())
    if fault == "missing":
        return {"Content-Type": content_type}
    if fault in _MALFORMED:
        return {**signed_headers(SIGNING_SECRET, body, content_type, timestamp=now), **_MALFORMED[fault]}
    if fault == "wrong":
        return signed_headers("not-the-signing-secret", body, content_type, timestamp=now)
    if fault == "stale":  # a captured request replayed after Slack's five-minute window
        return signed_headers(SIGNING_SECRET, body, content_type, timestamp=now - 6 * 60)
    return signed_headers(SIGNING_SECRET, body, content_type, timestamp=now)


_MALFORMED: dict[str, dict[str, str | bytes]] = {
    "timestamp-not-a-number": {"X-Slack-Request-Timestamp": "soon"},
    "timestamp-empty": {"X-Slack-Request-Timestamp": ""},
    "signature-not-ascii": {"X-Slack-Signature": "v0=\xe9t\xe9".encode("latin-1")},
}
"""Headers no Slack request has, which made Bolt fail with a 500 and a traceback."""


async def _post(world: World, kind: str, fault: str) -> httpx.Response:
    body, content_type = _request(world, kind)
    async with httpx.AsyncClient() as client:
        return await client.post(
            _url(world, "/slack/events"), content=body, headers=_headers(body, content_type, fault)
        )


_KINDS = ("events", "interactive", "slash_commands")


@pytest.mark.parametrize("fault", ["missing", "wrong", "stale", *_MALFORMED])
@pytest.mark.parametrize("kind", _KINDS)
async def test_badly_signed_requests_are_rejected(world: World, kind: str, fault: str) -> None:
    """Events, interactivity and slash commands without a valid, fresh signature get 401 and do nothing."""
    await world.until_settled()
    coder_before, slack_before = len(world.coder.requests), len(world.slack.calls)
    response = await _post(world, kind, fault)
    assert response.status_code == 401
    assert len(world.coder.requests) == coder_before, "nothing reached Coder"
    assert len(world.slack.calls) == slack_before, "nothing was answered in Slack"
    assert world.coder.chats == {}
    assert world.bridge is not None
    async with world.bridge.db.unit() as session:
        assert await repo.claim_event(session, "Ev0FORGED", "{}"), "the event was never recorded"


@pytest.mark.parametrize("fault", list(_MALFORMED))
async def test_malformed_signature_headers_leave_no_traceback(
    world: World, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A request with a timestamp that is no number or a garbled signature is refused like any
    unsigned one: 401, and nothing logged as an error."""
    with caplog.at_level(logging.WARNING):
        response = await _post(world, "events", fault)
    assert response.status_code == 401
    assert response.json() == {"error": "invalid request"}
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []


@pytest.mark.parametrize("kind", ["interactive", "slash_commands"])
async def test_a_replayed_interaction_or_command_is_acknowledged_and_ignored(world: World, kind: str) -> None:
    """The same signed request sent again within Slack's five minutes gets an empty 200 and no answer."""
    body, content_type = _request(world, kind)
    headers = _headers(body, content_type, "valid")
    async with httpx.AsyncClient() as client:
        first = await client.post(_url(world, "/slack/events"), content=body, headers=headers)
        again = await client.post(_url(world, "/slack/events"), content=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.text
    assert again.text == ""


async def test_a_replayed_coder_new_starts_one_chat(world: World) -> None:
    """A captured, signed `/coder new` replayed within five minutes starts no second chat or thread."""
    fields = {
        "command": "/coder",
        "text": "new fix the flaky test",
        "team_id": world.slack.team_id,
        "channel_id": world.slack.general,
        "user_id": world.slack.alice,
        "trigger_id": "1700000000000.42.replayed",
        "response_url": f"{world.slack.base_url}/response_url/replayed",
    }
    body = urlencode(fields).encode()
    headers = _headers(body, "application/x-www-form-urlencoded", "valid")
    async with httpx.AsyncClient() as client:
        first = await client.post(_url(world, "/slack/events"), content=body, headers=headers)
        assert "Starting a Coder chat" in first.json()["text"]
        await world.until(lambda: len(world.coder.chats) == 1)
        again = await client.post(_url(world, "/slack/events"), content=body, headers=headers)
    assert again.status_code == 200
    roots = [m for m in world.slack.history(world.slack.general) if m.bot_id]
    assert len(roots) == 1
    assert len(world.coder.chats) == 1


@pytest.mark.parametrize("kind", _KINDS)
async def test_well_signed_requests_are_acted_on(world: World, kind: str) -> None:
    """The same requests signed with the signing secret are handled, so the rejections above are real."""
    response = await _post(world, kind, "valid")
    assert response.status_code == 200
    if kind == "events":
        await world.until(lambda: len(world.coder.chats) == 1)
    elif kind == "slash_commands":
        assert "/coder link" in response.json()["text"]
    else:
        assert response.json()["response_action"] == "errors"


async def test_only_the_events_endpoint_takes_input(world: World) -> None:
    """Health, readiness and metrics answer GET only; any other path is unknown."""
    async with httpx.AsyncClient() as client:
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await client.post(_url(world, path), content="{}")).status_code == 405
        assert (await client.post(_url(world, "/slack/commands"), content="{}")).status_code == 404


async def test_url_verification_is_answered(world: World) -> None:
    """Saving the Request URL in Slack's app config succeeds (Bolt answers the challenge)."""
    delivery = await world.slack.deliver_event(
        {"type": "url_verification", "challenge": "c-123", "token": "t"}, wrap=False
    )
    assert delivery.status == 200
    assert "c-123" in (delivery.response_body or "")


async def test_health_readiness_and_metrics(world: World) -> None:
    """healthz is up, readyz reports ready, metrics count events, Slack and Coder calls and streams,
    and show the learned paces of new messages and the replicas sharing the budgets."""
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
    assert 'bridge_slack_pace_per_minute{method="chat.postMessage"}' in metrics
    assert 'bridge_slack_pace_ceiling_per_minute{method="chat.startStream"} 0.0' in metrics
    assert "bridge_replicas_live 1.0" in metrics


async def test_metrics_can_have_a_listener_of_their_own(world: World) -> None:
    """With BRIDGE_METRICS_PORT set, /metrics is served on that listener only: the main listener (the
    one Slack reaches) answers 404 for it, and the metrics listener serves nothing else."""
    await world.stop_bridge()
    bridge = await world.start_bridge(metrics_port=0)
    assert bridge.metrics_port is not None
    private = f"http://127.0.0.1:{bridge.metrics_port}"
    async with httpx.AsyncClient() as client:
        assert (await client.get(_url(world, "/metrics"))).status_code == 404
        assert (await client.get(_url(world, "/healthz"))).status_code == 200
        metrics = await client.get(f"{private}/metrics")
        assert (await client.get(f"{private}/healthz")).status_code == 404
    assert metrics.status_code == 200
    assert "bridge_live_streams" in metrics.text


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


async def test_readyz_fails_while_socket_mode_is_down(world: World) -> None:
    """While the Socket Mode connection is down (and cannot be reopened) readiness is 503."""
    await world.stop_bridge()
    await world.start_bridge(slack_app_token=SecretStr(world.slack.app_token))
    world.slack.event_url = None
    await world.until(lambda: world.slack.socket_connections == 1)
    world.slack.fail_next("apps.connections.open", error="internal_error", count=1000)
    await world.slack.disconnect_socket_mode()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    async with httpx.AsyncClient() as client:
        while (response := await client.get(_url(world, "/readyz"))).status_code == 200:
            assert loop.time() < deadline, "readyz stayed 200 with Socket Mode down"
            await asyncio.sleep(0.05)  # polling, as a load balancer does
    assert "slack: socket mode disconnected" in response.json()["reasons"]


async def test_no_secret_in_debug_logs_or_slack(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """A linked-mode conversation logged at DEBUG, with /coder link, a refused and a revoked token,
    shows no token, signing secret or encryption key in any log line or anything sent to Slack."""
    key = Fernet.generate_key().decode()
    personal, wrong = "tok-bob-personal-7d1e93", "tok-bob-mistyped-52aa10"
    world.coder.add_token(personal, "bob")
    root_logger = logging.getLogger()
    saved = (root_logger.handlers[:], root_logger.level)
    settings = world.settings.model_copy(update={"identity_mode": "linked", "encryption_key": SecretStr(key)})
    configure("DEBUG", "text", settings.secrets())
    try:
        await world.stop_bridge()
        await world.start_bridge(identity_mode="linked", encryption_key=SecretStr(key))
        bob, general = world.slack.bob, world.slack.general
        for token in (wrong, personal):
            await world.slack.slash_command(bob, general, "/coder", "link")
            await world.slack.submit_view(bob, {"token": {"token": token}})
        root = await world.mention("fix the login bug", user=bob)
        await world.until_idle_and_shown(root)
        await world.reply(root, "thanks", user=bob)
        await world.until_idle_and_shown(root, turns=2)
        world.coder.revoke_token(personal)
        await world.reply(root, "one more", user=bob)
        await world.until(
            lambda: any("refused" in (e.markdown_text or "") for e in world.slack.ephemerals(bob))
        )
        await world.slack.slash_command(bob, general, "/coder", "unlink")
        await world.stop_bridge()
    finally:
        root_logger.handlers[:], level = saved
        root_logger.setLevel(level)
    logged = capsys.readouterr().err
    if world.capabilities.replies_outlive_connection:  # a Coder without stream sockets has no handshake
        assert "Coder-Session-Token" in logged, "the websocket handshake was logged (and must be masked)"
    sent_to_slack = json.dumps(
        [c.params for c in world.slack.calls]
        + [p.body for p in world.slack.response_url_posts]
        + [d.response_body for d in world.slack.deliveries]
    )
    for secret in (world.slack.bot_token, CODER_TOKEN, SIGNING_SECRET, key, personal, wrong):
        assert secret not in logged
        assert secret not in sent_to_slack
