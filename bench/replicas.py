"""Replicas benchmark: three `bridge serve` replicas on one PostgreSQL database, one killed mid-stream.

The question (issue 20): when a replica dies with chats streaming, how long until the others follow
them again, and does any thread lose or double a message? Each round starts three replicas behind a
round-robin load balancer (``bridge.sim.balancer``), starts ``--chats`` chats at once (the mentions
spread over the replicas, so each follows about a third), waits until every thread shows the start
of its reply, then SIGKILLs the replica that follows the most chats. Takeover time is measured per
chat the killed replica held: from the kill to the moment another replica holds the thread's lease
(read from the ``lease`` table every 20 ms), the point from which it streams the chat again from the
stored cursor. Then every thread must end with its reply, its header and its "done" notice each
exactly once: lost counts threads missing one, duplicated counts messages shown twice.

Slack's rate limits are off (the question is takeover, not pacing); the lease lasts
``--lease`` seconds with a heartbeat of a quarter of that.

    BRIDGE_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/replicas.py [--chats 30] [--rounds 3] [--lease 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from latency import (
    CODER_TOKEN,
    SIGNING_SECRET,
    BridgeProcess,
    add_channels,
    free_port,
    mention_everywhere,
    percentile,
    print_environment_line,
    reply_text,
    simulators,
    wait_for_final_texts,
)
from sqlalchemy.engine import make_url

from bridge.sim.balancer import Balancer
from bridge.sim.coder import CoderSim
from bridge.sim.coder_agent import Step, Text
from bridge.sim.slack import SlackSim
from bridge.slack.blocks import is_outcome

REPLICAS = 3
WORDS = 240
"""Words per reply, one streamed part each: about 12 s of streaming at the part interval below."""
PART_INTERVAL = 0.05
_READY = re.compile(r"replica ([0-9a-f]{32})")
_TASK = re.compile(r"task (\d+)")


@dataclass
class Round:
    """What one round measured."""

    takeovers: list[float] = field(default_factory=list)
    """Seconds from the kill to another replica holding each chat the killed one followed."""
    held: int = 0
    lost: int = 0
    duplicated: int = 0
    complete: int = 0


def agent(prompt: str) -> Sequence[Step]:
    """Each chat's reply depends on its task number only, so a thread's expected text is known."""
    found = _TASK.search(prompt)
    return [Text(reply_text(WORDS, int(found.group(1)) if found else 0))]


@contextlib.asynccontextmanager
async def database(base: str) -> AsyncIterator[str]:
    """A throwaway PostgreSQL database for one round."""
    admin = make_url(base).set(drivername="postgresql")
    name = f"bench_replicas_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        connection = await asyncpg.connect(admin.render_as_string(hide_password=False))
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()


def environment(slack: SlackSim, coder: CoderSim, url: str, lease: float) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "CODER_", "BRIDGE_"))}
    return {
        **inherited,
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "CODER_URL": coder.url,
        "CODER_SESSION_TOKEN": CODER_TOKEN,
        "DATABASE_URL": url,
        "HOST": "127.0.0.1",
        "LOG_LEVEL": "INFO",
        "BRIDGE_EDIT_INTERVAL": "0.2",
        "BRIDGE_SLACK_RATE_SCALE": "50",  # the bridge's own pacing out of the way, as Slack's limits are
        "BRIDGE_LEASE_DURATION": str(lease),
        "BRIDGE_LEASE_HEARTBEAT": str(lease / 4),
    }


async def holders(connection: asyncpg.Connection) -> dict[str, str]:
    """Thread lease -> the replica holding it (expired ones left out)."""
    rows = await connection.fetch(
        "SELECT name, holder FROM lease WHERE name LIKE 'thread:%' AND expires_at > now()"
    )
    return {str(row["name"]): str(row["holder"]) for row in rows}


def tally(slack: SlackSim, coder: CoderSim, result: Round) -> None:
    """Count threads missing their reply, header or "done" notice (lost) and messages shown twice."""
    for chat in coder.chats.values():
        found = _TASK.search(" ".join(str(m.get("content")) for m in chat.messages if m["role"] == "user"))
        reply = reply_text(WORDS, int(found.group(1)) if found else 0)
        thread = slack.thread(chat.labels["slack_channel"], chat.labels["slack_thread"])
        texts = [m.visible_text for m in thread if m.bot_id]
        counts = [
            texts.count(reply),
            sum(1 for t in texts if t.startswith("Started a Coder chat")),
            sum(1 for t in texts if is_outcome(t)),
        ]
        result.lost += int(min(counts) == 0)
        result.duplicated += len(texts) - len(set(texts))
        result.complete += int(counts == [1, 1, 1])


async def run_round(base: str, chats: int, lease: float, workdir: Path) -> Round:
    result = Round()
    async with (
        database(base) as url,
        simulators(agent, PART_INTERVAL, rate_limits=False) as (coder, slack),
        Balancer() as balancer,
    ):
        env = environment(slack, coder, url, lease)
        replicas: dict[str, BridgeProcess] = {}
        for index in range(REPLICAS):
            home = workdir / f"replica-{index}"
            home.mkdir(parents=True, exist_ok=True)
            process = await BridgeProcess.start({**env, "PORT": str(free_port())}, home)
            found = _READY.search(process.log_path.read_text(errors="replace"))
            assert found is not None, "a replica did not log its id"
            replicas[found.group(1)] = process
        balancer.upstreams = [f"http://127.0.0.1:{p.port}/slack/events" for p in replicas.values()]
        slack.event_url = balancer.url
        connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        try:
            await mention_everywhere(slack, add_channels(slack, chats))

            def streaming() -> bool:
                started = [c for c in coder.chats.values() if c.status == "running"]
                return len(started) == chats and all(
                    any(
                        m.bot_id and not m.visible_text.startswith("Started")
                        for m in slack.thread(c.labels["slack_channel"], c.labels["slack_thread"])
                    )
                    for c in started
                )

            await slack.wait_for(streaming, timeout=60)
            held = await holders(connection)
            counts: dict[str, int] = {}
            for holder in held.values():
                counts[holder] = counts.get(holder, 0) + 1
            victim = max(counts, key=lambda r: counts[r])
            victims = {name for name, holder in held.items() if holder == victim}
            result.held = len(victims)
            killed_at = time.monotonic()
            replicas[victim].process.kill()
            await replicas[victim].process.wait()
            balancer.upstreams = [
                f"http://127.0.0.1:{p.port}/slack/events" for r, p in replicas.items() if r != victim
            ]
            waiting = set(victims)
            while waiting and time.monotonic() - killed_at < 60:
                now = await holders(connection)
                for name in list(waiting):
                    if now.get(name, victim) != victim:  # expired ones count as the victim's
                        result.takeovers.append(time.monotonic() - killed_at)
                        waiting.discard(name)
                await asyncio.sleep(0.02)
            await wait_for_final_texts(slack, coder, chats, timeout=120)

            def told() -> bool:  # the requester is told last, once everything else is shown
                return all(
                    any(
                        m.bot_id and is_outcome(m.visible_text)
                        for m in slack.thread(c.labels["slack_channel"], c.labels["slack_thread"])
                    )
                    for c in coder.chats.values()
                )

            with contextlib.suppress(TimeoutError):
                await slack.wait_for(told, timeout=30)
            await asyncio.sleep(2)  # let any late duplicate land before counting
            tally(slack, coder, result)
        finally:
            await connection.close()
            for replica, process in replicas.items():
                if replica != victim:
                    await process.stop()
    return result


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chats", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lease", type=float, default=3.0, help="BRIDGE_LEASE_DURATION, seconds")
    parser.add_argument("--postgres", default=os.environ.get("BRIDGE_TEST_POSTGRES_URL"))
    return parser.parse_args(argv)


async def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.postgres:
        print("set BRIDGE_TEST_POSTGRES_URL (or --postgres): replicas share a PostgreSQL database")
        return 2
    print_environment_line()
    rounds: list[Round] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as workdir:
        for number in range(args.rounds):
            result = await run_round(args.postgres, args.chats, args.lease, Path(workdir) / str(number))
            rounds.append(result)
            print(
                f"round {number + 1}: killed a replica following {result.held} of {args.chats} chats; "
                f"taken over {len(result.takeovers)}, complete {result.complete}/{args.chats}, "
                f"lost {result.lost}, duplicated {result.duplicated}"
            )
    takeovers = sorted(t for r in rounds for t in r.takeovers)
    p50, p99 = percentile(takeovers, 0.5), percentile(takeovers, 0.99)
    print(
        f"\n{REPLICAS} replicas, {args.chats} chats, lease {args.lease:g} s, {args.rounds} kills "
        f"({time.monotonic() - started:.0f} s)"
    )
    print("| measure | value |\n|---|---|")
    print(
        f"| chats taken over | {len(takeovers)} of {sum(r.held for r in rounds)} the killed replicas held |"
    )
    print(f"| takeover time p50 / p99 | {p50 or 0:.2f} s / {p99 or 0:.2f} s |")
    print(f"| threads complete | {sum(r.complete for r in rounds)} / {args.chats * args.rounds} |")
    print(f"| lost | {sum(r.lost for r in rounds)} |")
    print(f"| duplicated | {sum(r.duplicated for r in rounds)} |")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
