"""Running `bridge serve` as a separate process against the simulators, as an operator would."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from asyncio.subprocess import PIPE, Process
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import httpx

from bridge.sim.coder import CoderSim
from bridge.sim.slack import SlackSim
from tests.integration.conftest import CODER_TOKEN, SIGNING_SECRET

_OURS = ("SLACK_", "CODER_", "DATABASE_URL", "HOST", "PORT", "LOG_", "BRIDGE_")


def clean_env(**values: str) -> dict[str, str]:
    """The current environment without any bridge setting, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
    env.update(values)
    return env


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_env(slack: SlackSim, coder: CoderSim, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment an operator sets for these simulators (timings shrunk for tests)."""
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
    return clean_env(**{**values, **extra})


_STARTED: list[Process] = []
"""Bridges started by the running test, for ``reap_bridges``."""


def reap_bridges() -> None:
    """Kill the bridges a test started and left running: one that failed before its own ``kill`` or
    ``stop`` must not leave a server behind for the rest of the session."""
    while _STARTED:
        process = _STARTED.pop()
        if process.returncode is None:
            process.kill()


class PortTaken(Exception):
    """The bridge exited because another process took its port first."""


def _tail(log: Path | None, since: int) -> str:
    """What a bridge wrote to ``log`` from byte ``since`` on (its last 4,000 characters)."""
    if log is None:
        return ""
    with log.open("rb") as file:
        file.seek(since)
        return file.read().decode(errors="replace")[-4000:]


@dataclass
class BridgeProcess:
    """A `python -m bridge serve` child process."""

    process: Process
    port: int

    @classmethod
    async def start(
        cls, env: dict[str, str], cwd: Path, *, timeout: float = 30, log: Path | None = None
    ) -> BridgeProcess:
        """Start it and wait until /readyz answers 200 (polling, as a load balancer does).

        With ``log`` its output is appended to that file instead of a pipe, so a long-running
        process never blocks on a full pipe nobody reads. The free port it is given can be taken
        by another process before the bridge binds it (a loaded machine opens many loopback
        connections); then it is started again on another port.
        """
        for _ in range(3):
            try:
                return await cls._start_once(env, cwd, timeout, log)
            except PortTaken:
                continue
        raise RuntimeError("bridge could not get a free port in three tries")

    @classmethod
    async def _start_once(
        cls, env: dict[str, str], cwd: Path, timeout: float, log: Path | None
    ) -> BridgeProcess:
        port = free_port()
        logged = 0
        with contextlib.ExitStack() as files:
            output: int | TextIO = PIPE
            if log is not None:
                output = files.enter_context(log.open("a"))
                logged = output.tell()
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bridge",
                "serve",
                env={**env, "PORT": str(port)},
                cwd=cwd,
                stdout=output,
                stderr=output,
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with httpx.AsyncClient() as client:
            while loop.time() < deadline:
                if process.returncode is not None:
                    _, err = await process.communicate()
                    said = err.decode() if err else _tail(log, logged)
                    if "cannot listen on" in said:
                        raise PortTaken(said)
                    raise RuntimeError(f"bridge exited with {process.returncode}: {said}")
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                        _STARTED.append(process)
                        return cls(process, port)
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        process.kill()
        raise TimeoutError("bridge did not become ready")

    @property
    def events_url(self) -> str:
        """Where Slack delivers events to this bridge."""
        return f"http://127.0.0.1:{self.port}/slack/events"

    async def kill(self) -> None:
        """SIGKILL: no shutdown, nothing flushed — a crash."""
        self.process.kill()
        await self.process.communicate()

    async def stop(self, timeout: float = 20) -> tuple[int, str]:
        """SIGTERM and wait; the exit status and what it logged (empty when it logs to a file)."""
        self.process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(self.process.communicate(), timeout)
        assert self.process.returncode is not None
        return self.process.returncode, err.decode() if err else ""
