"""Scale benchmark: how far one bridge process goes.

Two questions (issue 20, item 6). First, 2,000 followed chats in one process: every chat has begun
its turn and waits (its agent holds the turn open), so the bridge keeps a stream socket open per
chat and does nothing else. What does an idle followed chat cost: resident memory, open sockets, and
CPU while nothing happens? Second, how many Slack events does one replica acknowledge a second: a
burst of plain channel messages (no mention, so no chat), each recorded durably before its
acknowledgement, as every event is.

The simulators run in this process; the bridge runs as ``python -m bridge serve`` (as in
``latency.py``, whose helpers this reuses), with Slack's limits off in the simulator and the bridge's
own budgets lifted, so setting up the chats takes minutes, not an hour of Tier 3 reactions. The
bridge's memory, sockets and CPU are read from ``/proc`` (Linux).

    .venv/bin/python bench/scale.py [--chats 2000] [--idle 30] [--events 2000] [--concurrency 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from latency import (
    UNLIMITED,
    BridgeProcess,
    Scenario,
    add_channels,
    bridge_environment,
    free_port,
    print_environment_line,
    simulators,
)

from bridge.demo import wait_either
from bridge.sim.coder import CoderSim
from bridge.sim.coder_agent import Gate, Step, Text
from bridge.sim.slack import SlackSim

IDLE = Scenario(
    "scale",
    "many idle chats",
    slack_rate_limits=False,
    bridge_env={"BRIDGE_SLACK_RATE_SCALE": UNLIMITED},
)
CHANNELS = 100
"""Channels the mentions are spread over."""
BATCH = 50
"""Mentions sent at once while the chats are set up."""


@dataclass(frozen=True)
class Usage:
    """The bridge process as ``/proc`` shows it."""

    rss: int
    """Resident memory, bytes."""
    sockets: int
    cpu: float
    """User and system CPU seconds so far."""

    @staticmethod
    def of(pid: int) -> Usage:
        status = Path(f"/proc/{pid}/status").read_text()
        rss = next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:"))
        sockets = 0
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                sockets += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
            except OSError:
                continue
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return Usage(rss, sockets, (int(fields[11]) + int(fields[12])) / ticks)


async def live_streams(port: int) -> int:
    """The bridge's ``bridge_live_streams`` gauge: chat streams open, plus the chat-list watch."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    line = next(line for line in text.splitlines() if line.startswith("bridge_live_streams "))
    return int(float(line.split()[1]))


async def follow_chats(slack: SlackSim, coder: CoderSim, channels: Sequence[str], chats: int) -> float:
    """Mention the bot ``chats`` times, in batches, until the bridge opened every chat's stream;
    seconds taken."""
    started = time.monotonic()
    for first in range(0, chats, BATCH):
        await asyncio.gather(
            *(
                slack.user_says(slack.alice, channels[n % len(channels)], f"<@{slack.bot_user_id}> task {n}")
                for n in range(first, min(first + BATCH, chats))
            )
        )

    def streamed() -> bool:
        return (
            len({r.path for r in coder.requests if r.method == "GET" and r.path.endswith("/stream")}) >= chats
        )

    with contextlib.suppress(TimeoutError):
        await wait_either(slack, coder, streamed, 600)
    return time.monotonic() - started


async def acknowledge(
    slack: SlackSim, channels: Sequence[str], events: int, concurrency: int
) -> tuple[float, int]:
    """Plain channel messages (each one ``message`` event), ``concurrency`` at a time; seconds until
    the last was acknowledged, and how many were not within Slack's 3 s."""
    before = len(slack.deliveries)
    queue = iter(range(events))

    async def sender() -> None:
        for n in queue:
            await slack.user_says(slack.alice, channels[n % len(channels)], f"chatter {n}")

    started = time.monotonic()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    late = sum(1 for d in slack.deliveries[before:] if d.failure is not None)
    return elapsed, late


async def run(args: argparse.Namespace) -> None:
    hold = asyncio.Event()  # never set: every turn stays open, so every chat stays followed

    def agent(prompt: str) -> Sequence[Step]:
        return [Text("On it."), Gate(hold)]

    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        workdir = Path(tmp)
        async with simulators(agent, 0.01, rate_limits=False) as (coder, slack):
            channels = add_channels(slack, CHANNELS)
            env = bridge_environment(slack, coder, workdir, free_port(), IDLE)
            bridge = await BridgeProcess.start(env, workdir)
            slack.event_url = f"http://127.0.0.1:{bridge.port}/slack/events"
            pid = bridge.process.pid
            try:
                await asyncio.sleep(2.0)
                empty = Usage.of(pid)
                print(f"setting up {args.chats} followed chats …", flush=True)
                setup = await follow_chats(slack, coder, channels, args.chats)
                followed = await live_streams(bridge.port) - 1  # the chat-list watch is one of them
                await asyncio.sleep(5.0)  # the last posts and reactions go out
                start = Usage.of(pid)
                await asyncio.sleep(args.idle)
                idle = Usage.of(pid)
                print(f"acknowledging {args.events} events …", flush=True)
                elapsed, late = await acknowledge(slack, channels, args.events, args.concurrency)
            finally:
                exit_code = await bridge.stop()
    chats = max(followed, 1)
    print()
    print(f"followed chats: {followed}/{args.chats} (set up in {setup:.0f} s)")
    print(
        f"resident memory: {empty.rss / 2**20:.0f} MiB empty, {idle.rss / 2**20:.0f} MiB with the chats: "
        f"{(idle.rss - empty.rss) / chats / 1024:.1f} KiB per followed chat"
    )
    print(f"open sockets: {empty.sockets} empty, {idle.sockets} with the chats")
    cpu = idle.cpu - start.cpu
    print(f"CPU while idle: {cpu:.2f} s in {args.idle:.0f} s ({cpu / args.idle * 100:.1f} % of a core)")
    print(
        f"events acknowledged: {args.events} in {elapsed:.1f} s, {args.events / elapsed:.0f} a second "
        f"({args.concurrency} at a time); not within 3 s: {late}"
    )
    print(f"bridge exit code after SIGTERM: {exit_code}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--chats", type=int, default=2000, help="followed chats (default 2000)")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds the idle CPU is measured over")
    parser.add_argument("--events", type=int, default=2000, help="events sent to be acknowledged")
    parser.add_argument("--concurrency", type=int, default=100, help="events under way at once")
    return parser.parse_args(argv)


async def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print_environment_line()
    print(
        f"setup: {args.chats} chats over {CHANNELS} channels, each waiting mid-turn; Slack limits off, "
        "the bridge's budgets lifted"
    )
    await run(args)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
