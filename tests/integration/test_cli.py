"""The `bridge` command as an operator runs it: config errors, serve + SIGTERM, doctor, the demo."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bridge.sim.coder import CoderSim
from bridge.sim.slack import SlackSim
from tests.integration.conftest import CODER_TOKEN, SIGNING_SECRET

_OURS = ("SLACK_", "CODER_", "DATABASE_URL", "HOST", "PORT", "LOG_", "BRIDGE_")


def _env(**values: str) -> dict[str, str]:
    """The current environment without any bridge setting, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
    env.update(values)
    return env


async def _run(*args: str, env: dict[str, str], cwd: Path, timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", *args, env=env, cwd=cwd, stdout=PIPE, stderr=PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def sims() -> AsyncIterator[tuple[SlackSim, CoderSim]]:
    async with (
        CoderSim(tokens={CODER_TOKEN: "alice"}, part_interval=0.002) as coder,
        SlackSim(signing_secret=SIGNING_SECRET, time_scale=0.05) as slack,
    ):
        yield slack, coder


def _serve_env(slack: SlackSim, coder: CoderSim, tmp_path: Path, **extra: str) -> dict[str, str]:
    values = {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "CODER_URL": coder.url,
        "CODER_SESSION_TOKEN": CODER_TOKEN,
        "DATABASE_URL": f"sqlite:///{tmp_path}/bridge.db",
        "HOST": "127.0.0.1",
        "BRIDGE_SLACK_RATE_SCALE": "20",
        "BRIDGE_EDIT_INTERVAL": "0.05",
    }
    return _env(**{**values, **extra})


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, "SLACK_BOT_TOKEN is not set"),
        ({"SLACK_BOT_TOKEN": "xoxb-1", "CODER_SESSION_TOKEN": "t0k3n-value"}, "CODER_URL is not set"),
        ({"PORT": "eighty"}, "PORT is invalid"),
        ({"SLACK_BOT_TOKEN": "changeme"}, "SLACK_BOT_TOKEN is a placeholder"),
    ],
)
async def test_serve_refuses_bad_configuration(tmp_path: Path, values: dict[str, str], expected: str) -> None:
    """A missing or malformed setting stops `bridge serve` with one line naming it, exit status 2."""
    code, out, err = await _run("serve", env=_env(**values), cwd=tmp_path)
    assert code == 2
    assert err.strip().count("\n") == 0
    assert expected in err
    for value in values.values():
        if value not in ("eighty",):
            assert value not in err + out


async def test_serve_reports_unreachable_coder(tmp_path: Path, sims: tuple[SlackSim, CoderSim]) -> None:
    """A Coder that cannot be reached at start stops `serve` with one line saying so, exit status 1."""
    slack, coder = sims
    env = _serve_env(
        slack, coder, tmp_path, PORT=str(_free_port()), CODER_URL=f"http://127.0.0.1:{_free_port()}"
    )
    code, _, err = await _run("serve", env=env, cwd=tmp_path)
    assert code == 1
    assert "cannot start" in err
    assert "Could not reach Coder" in err


async def test_serve_relays_then_stops_cleanly_on_sigterm(
    tmp_path: Path, sims: tuple[SlackSim, CoderSim]
) -> None:
    """`bridge serve` relays a mention end to end, and SIGTERM ends it with exit status 0."""
    slack, coder = sims
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge",
        "serve",
        env=_serve_env(slack, coder, tmp_path, PORT=str(port)),
        cwd=tmp_path,
        stdout=PIPE,
        stderr=PIPE,
    )
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(200):  # readiness probe, as a load balancer would poll it
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        slack.event_url = f"http://127.0.0.1:{port}/slack/events"
        root = await slack.user_says(slack.alice, slack.general, f"<@{slack.bot_user_id}> fix the login bug")
        await slack.wait_for(
            lambda: any("Run `pytest" in m.visible_text for m in slack.thread(slack.general, root)),
            timeout=20,
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    assert "bridge stopped" in err.decode()


async def test_doctor_checks_everything_against_simulators(
    tmp_path: Path, sims: tuple[SlackSim, CoderSim]
) -> None:
    """`bridge doctor` reports Slack identity, scopes, Coder user and API generation; no secret shown."""
    slack, coder = sims
    code, out, err = await _run("doctor", env=_serve_env(slack, coder, tmp_path), cwd=tmp_path)
    assert code == 0, out + err
    assert "auth.test: bot user U0BOT" in out
    assert "authenticated as alice" in out
    assert "Chats API: experimental" in out
    for secret in (slack.bot_token, CODER_TOKEN, SIGNING_SECRET):
        assert secret not in out + err


async def test_doctor_says_how_to_fix_a_bad_token(tmp_path: Path, sims: tuple[SlackSim, CoderSim]) -> None:
    """A rejected Coder token fails the doctor with a fix, exit status 1."""
    slack, coder = sims
    env = _serve_env(slack, coder, tmp_path, CODER_SESSION_TOKEN="wrong-token-123")
    code, out, _ = await _run("doctor", env=env, cwd=tmp_path)
    assert code == 1
    assert "fix:" in out
    assert "wrong-token-123" not in out


async def test_bare_bridge_without_credentials_plays_the_demo(tmp_path: Path) -> None:
    """The Quick start command: `bridge` with no credentials runs the demo to the end, exit status 0."""
    code, out, err = await _run(env=_env(), cwd=tmp_path, timeout=120)
    assert code == 0, err
    assert "playing the built-in demo" in out
    assert "alice: <@U0BOT> fix the login bug" in out
    assert "Run `pytest tests/test_auth.py` to confirm the fix." in out
    assert "Demo finished" in out
