"""Busy-company benchmark: mentions in waves, each answered with one short reply; how soon?

The question (issue 20, item 7): mentions arrive in waves of 50 every 40 s (75 a minute, 300 chats
in six waves), each answered by the agent with one short reply, and Slack itself imposes no limit
(the simulator's limits are off). How long does a person wait from their mention to the Slack call
that shows the agent's whole reply, p50 and p99, and how many posts a second does the bridge make?
Whatever wait there is, is the bridge's own: its budgets, its priorities, its transactions.

Both simulators run in this process (one clock); the real bridge runs as ``python -m bridge serve``
as in ``latency.py``, whose helpers this reuses. Each wave's mentions go one per channel (``--channels``
channels), so Slack's one message a second per channel is not what is measured. With
``--database-url postgresql://…`` the bridge runs on a fresh PostgreSQL database and the script also
prints the transactions the bridge committed per mention (PostgreSQL's own count).

    .venv/bin/python bench/busy.py [--waves 6] [--wave-size 50] [--interval 40] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg
from latency import (
    BridgeProcess,
    CpuTime,
    Scenario,
    add_channels,
    bridge_environment,
    free_port,
    percentile,
    print_environment_line,
    reply_script,
    reply_text,
    simulators,
    slack_texts,
    summarise_log,
    thread_of,
    wait_for_final_texts,
)
from sqlalchemy.engine import make_url

from bridge.sim.coder import CoderSim
from bridge.sim.slack import SlackSim

PART_INTERVAL = 0.05
"""Seconds between the reply's streamed words."""

BUSY = Scenario(
    "busy",
    "busy company",
    slack_rate_limits=False,
    bridge_env={},  # the bridge as deployed: its default budgets and pacing
)


@dataclass(frozen=True)
class Mention:
    """One person's mention: its thread and when it was sent."""

    channel: str
    ts: str
    sent: float


@dataclass(frozen=True)
class Busy:
    """What one run measured."""

    mentions: int
    answered: list[float]
    """Seconds from each answered mention to the call showing its whole reply."""
    created: list[float]
    """Seconds from each mention to its chat's creation in Coder."""
    first_post: list[float]
    """Seconds from each mention to the first message the bot posted in its thread."""
    posts: int
    post_span: float
    peak_posts: int
    """Posts in the busiest second."""
    calls_by_method: Counter[str]
    wall: float
    cpu: CpuTime
    transactions: int | None
    unacknowledged: int
    """Event deliveries the bridge did not acknowledge within Slack's 3 s (Slack retries them later)."""
    bridge_log: list[str]


async def send_wave(slack: SlackSim, channels: Sequence[str], wave: int) -> list[Mention]:
    """A mention in each channel at once; each starts a thread, so a chat."""

    async def mention(channel: str) -> Mention:
        sent = time.monotonic()
        ts = await slack.user_says(
            slack.alice, channel, f"<@{slack.bot_user_id}> task {wave}", wait_ack=False
        )
        return Mention(channel, ts, sent)

    return list(await asyncio.gather(*(mention(channel) for channel in channels)))


def creation_latencies(coder: CoderSim, mentions: list[Mention]) -> list[float]:
    """Per mention whose chat exists: seconds from the mention to the chat's creation in Coder
    (``created_at`` is wall-clock time, moved onto the monotonic clock the mentions are stamped with)."""
    offset = time.time() - time.monotonic()
    created = {
        thread_of(coder, chat.id): datetime.fromisoformat(chat.created_at).timestamp() - offset
        for chat in coder.chats.values()
    }
    return [created[(m.channel, m.ts)] - m.sent for m in mentions if (m.channel, m.ts) in created]


def first_posts(slack: SlackSim, mentions: list[Mention]) -> list[float]:
    """Per mention answered at all: seconds from the mention to the bot's first post in its thread."""
    first: dict[tuple[str, str], float] = {}
    for call in slack.calls:
        if call.method == "chat.postMessage" and call.ok and call.params.get("thread_ts"):
            first.setdefault((str(call.params.get("channel")), str(call.params["thread_ts"])), call.time)
    return [first[(m.channel, m.ts)] - m.sent for m in mentions if (m.channel, m.ts) in first]


def answer_latencies(
    slack: SlackSim, coder_threads: dict[tuple[str, str], str], mentions: list[Mention]
) -> list[float]:
    """Per mention whose reply was shown: seconds from the mention to the first call showing it whole."""
    texts = slack_texts(slack)
    latencies = []
    for mention in mentions:
        reply = coder_threads.get((mention.channel, mention.ts))
        shown = texts.get((mention.channel, mention.ts), [])
        at = next((s.time for s in shown if reply is not None and reply in s.text), None)
        if at is not None:
            latencies.append(at - mention.sent)
    return latencies


def busiest_second(times: list[float]) -> int:
    """The most calls within any one second."""
    ordered = sorted(times)
    start, most = 0, 0
    for end, at in enumerate(ordered):
        while ordered[start] <= at - 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


async def transactions(url: str | None) -> int | None:
    """Transactions committed in the database so far (PostgreSQL's statistics), None on SQLite."""
    if url is None:
        return None
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        value = await conn.fetchval(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        )
    finally:
        await conn.close()
    return int(value)


async def fresh_postgres(server: str) -> str:
    """A new, empty database on the PostgreSQL server ``server`` names; its URL."""
    name = f"bench_busy_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return str(make_url(server).set(database=name).render_as_string(hide_password=False))


async def run(args: argparse.Namespace) -> Busy:
    started, cpu_before = time.monotonic(), CpuTime.now()
    reply = reply_text(args.words, args.seed)
    database = await fresh_postgres(args.database_url) if args.database_url else None
    with tempfile.TemporaryDirectory(prefix="bench-busy-") as tmp:
        workdir = Path(tmp)
        async with simulators(reply_script(reply), PART_INTERVAL, rate_limits=False) as (coder, slack):
            channels = add_channels(slack, args.wave_size)
            env = bridge_environment(slack, coder, workdir, free_port(), BUSY)
            if database is not None:
                env["DATABASE_URL"] = database
            bridge = await BridgeProcess.start(env, workdir)
            slack.event_url = f"http://127.0.0.1:{bridge.port}/slack/events"
            before = await transactions(database)
            mentions: list[Mention] = []
            try:
                first = time.monotonic()
                for wave in range(args.waves):
                    await asyncio.sleep(max(0.0, first + wave * args.interval - time.monotonic()))
                    print(f"  wave {wave + 1}/{args.waves}", flush=True)
                    mentions += await send_wave(slack, channels, wave)
                await wait_for_final_texts(slack, coder, len(mentions), args.timeout)
                after = await transactions(database)
            finally:
                exit_code = await bridge.stop()
            if exit_code != 0:
                print(f"  bridge exit code after SIGTERM: {exit_code}")
            threads = {thread_of(coder, chat.id): reply for chat in coder.chats.values()}
            posts = [c.time for c in slack.calls if c.method == "chat.postMessage" and c.ok]
            return Busy(
                mentions=len(mentions),
                answered=answer_latencies(slack, threads, mentions),
                created=creation_latencies(coder, mentions),
                first_post=first_posts(slack, mentions),
                posts=len(posts),
                post_span=(max(posts) - min(m.sent for m in mentions)) if posts else 0.0,
                peak_posts=busiest_second(posts),
                calls_by_method=Counter(c.method for c in slack.calls),
                wall=time.monotonic() - started,
                cpu=CpuTime.now() - cpu_before,
                transactions=None if before is None or after is None else after - before,
                unacknowledged=sum(1 for d in slack.deliveries if d.failure is not None),
                bridge_log=summarise_log(bridge.log_path.read_text(errors="replace")),
            )


def report(result: Busy) -> None:
    lat = result.answered
    p50, p99 = percentile(lat, 0.5), percentile(lat, 0.99)
    print()
    print(f"mentions answered: {len(lat)}/{result.mentions}")
    if p50 is not None and p99 is not None:
        print(f"answer latency: p50 {p50:.2f} s, p99 {p99:.2f} s, max {max(lat):.2f} s")
    for name, values in (("chat created in Coder", result.created), ("first post", result.first_post)):
        low, high = percentile(values, 0.5), percentile(values, 0.99)
        if low is not None and high is not None:
            print(f"mention -> {name}: p50 {low:.2f} s, p99 {high:.2f} s")
    rate = result.posts / result.post_span if result.post_span else 0.0
    print(
        f"posts: {result.posts} in {result.post_span:.0f} s from the first mention ({rate:.1f}/s overall, "
        f"{result.peak_posts} in the busiest second)"
    )
    print(f"event deliveries not acknowledged within 3 s (retried by Slack later): {result.unacknowledged}")
    print("Slack calls: " + ", ".join(f"{m} {n}" for m, n in sorted(result.calls_by_method.items())))
    if result.transactions is not None:
        print(
            f"database transactions committed: {result.transactions} "
            f"({result.transactions / max(result.mentions, 1):.1f} per mention, everything included)"
        )
    print(
        f"CPU: bridge {result.cpu.bridge:.1f} s, simulators and measuring {result.cpu.simulators:.1f} s, "
        f"in {result.wall:.1f} s of wall time"
    )
    print(f"bridge log ({'empty' if not result.bridge_log else 'commonest records'}):")
    for line in result.bridge_log:
        print(f"  {line}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--waves", type=int, default=6, help="waves of mentions (default 6: 300 chats)")
    parser.add_argument("--wave-size", type=int, default=50, help="mentions per wave, one per channel")
    parser.add_argument("--interval", type=float, default=40.0, help="seconds between waves (default 40)")
    parser.add_argument("--words", type=int, default=8, help="words of the reply (default 8)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the reply's words (default 1)")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server URL (e.g. postgresql://postgres@127.0.0.1:5432/postgres): the bridge "
        "gets a fresh database there instead of SQLite, and transactions per mention are counted",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the last answers")
    return parser.parse_args(argv)


async def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print_environment_line()
    print(
        f"setup: {args.waves} waves of {args.wave_size} mentions every {args.interval:.0f} s, one per "
        f"channel; reply of {args.words} words; Slack limits off; database "
        f"{'PostgreSQL' if args.database_url else 'SQLite'}"
    )
    report(await run(args))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
