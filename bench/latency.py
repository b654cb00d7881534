"""Latency benchmark: from a ``message_part`` leaving the Coder simulator to the Slack call showing it.

The question (from the issue): how long after Coder streams a piece of an agent's reply does Slack get
the call that shows it, p50 and p99, with 100 chats streaming at once? Both simulators run in this
process, so their timestamps share one clock: ``CoderSim.frame_log`` stamps each stream frame right
after it was written to the socket, ``SlackSim.calls`` stamps each Web API call as it arrives. The real
bridge runs as a separate ``python -m bridge serve`` process, configured by environment exactly as an
operator would, so on a 2-core machine the simulators get one core and the bridge the other.

A part counts as shown by the first successful ``chat.postMessage`` / ``chat.update`` in its chat's
thread, made after the frame, whose text contains the reply as streamed up to and including that
part. Intermediate texts the bridge coalesces away are thereby shown by the later call that contains
them; a part no call ever contained is reported as missing.

    .venv/bin/python bench/latency.py [--chats 100] [--parts 40] [--scenarios overhead,pacing,limits]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import gc
import json
import math
import os
import platform
import random
import re
import resource
import signal
import socket
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from bridge import __version__
from bridge.demo import wait_either
from bridge.sim.coder import CoderSim
from bridge.sim.coder_agent import Script, Step, Text
from bridge.sim.coder_state import SimChat
from bridge.sim.slack import SlackSim

CODER_TOKEN = "sim-bench-token"
SIGNING_SECRET = "sim-bench-signing-secret"
PART_INTERVAL = 0.05
"""Seconds between streamed parts: 40 one-word parts make a reply that streams for about 2 s."""
READY_TIMEOUT = 30.0
READY_POLL = 0.05
STOP_TIMEOUT = 30.0
POSTING_METHODS = frozenset({"chat.postMessage", "chat.update"})
VOCABULARY = (
    "parser",
    "cache",
    "buffer",
    "schema",
    "kernel",
    "socket",
    "module",
    "queue",
    "commit",
    "deploy",
)
"""Reply words: none occurs in the bot's header message, so a part's text cannot match the header."""
Thread = tuple[str, str]
"""A Slack thread as (channel id, root ts)."""


@dataclass(frozen=True)
class Scenario:
    """One configuration of Slack's limits and the bridge's pacing, run on fresh simulators and bridge."""

    key: str
    title: str
    slack_rate_limits: bool
    bridge_env: Mapping[str, str]


UNLIMITED = "1000000"
"""A ``BRIDGE_SLACK_RATE_SCALE`` under which none of the bridge's own Slack budgets ever waits (at 1000,
``chat.update`` still allowed only 800 a second, which 1,000 streaming chats exceed)."""

SCENARIOS: Mapping[str, Scenario] = {
    s.key: s
    for s in (
        Scenario(
            "overhead",
            "relay overhead",
            slack_rate_limits=False,
            bridge_env={"BRIDGE_EDIT_INTERVAL": "0", "BRIDGE_SLACK_RATE_SCALE": UNLIMITED},
        ),
        Scenario(
            "pacing",
            "default pacing",
            slack_rate_limits=False,
            # The bridge's own rate budgets are lifted too, so only the edit interval paces output.
            bridge_env={"BRIDGE_EDIT_INTERVAL": "1.0", "BRIDGE_SLACK_RATE_SCALE": UNLIMITED},
        ),
        Scenario(
            "limits",
            "Slack limits on",
            slack_rate_limits=True,
            bridge_env={"BRIDGE_EDIT_INTERVAL": "1.0", "BRIDGE_SLACK_RATE_SCALE": "1"},
        ),
    )
}


@dataclass(frozen=True)
class StreamedPart:
    """One assistant text part as it left the Coder simulator, with the reply text it completes."""

    chat_id: str
    sent: float
    reply_so_far: str


@dataclass(frozen=True)
class Shown:
    """One successful Slack call that set the text of a bot message in a thread."""

    time: float
    text: str


@dataclass(frozen=True)
class CpuTime:
    """CPU seconds (user + system) of this process (the simulators) and of the bridge process."""

    simulators: float
    bridge: float

    @staticmethod
    def now() -> CpuTime:
        """Totals so far; a finished scenario's bridge counts once it has been waited for."""
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return CpuTime(own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime)

    def __sub__(self, other: CpuTime) -> CpuTime:
        return CpuTime(self.simulators - other.simulators, self.bridge - other.bridge)


@dataclass(frozen=True)
class Result:
    """The figures of one scenario, as printed in the table."""

    scenario: Scenario
    chats: int
    chats_created: int
    streamed_too_late: int
    stream_lags: list[float]
    parts_expected: int
    latencies: list[float]
    missing: int
    slack_calls: int
    ratelimited: int
    finals_complete: int
    drain: float | None
    wall: float
    bridge_exit: int | None
    cpu: CpuTime
    calls_by_method: Counter[str]
    update_rate: float | None
    stream_connects: int
    unacknowledged: int
    """Event deliveries the bridge did not acknowledge within Slack's 3 s (Slack retries them later)."""
    bridge_log: list[str]


# -- the agent ---------------------------------------------------------------------------------------


def reply_text(words: int, seed: int) -> str:
    """A reply of ``words`` words drawn from ``VOCABULARY`` with a seeded generator (reproducible)."""
    rng = random.Random(seed)
    return " ".join(rng.choice(VOCABULARY) for _ in range(words))


def reply_script(text: str) -> Script:
    """An agent that answers every prompt with ``text`` alone, streamed one word per part."""

    def script(prompt: str) -> Sequence[Step]:
        return [Text(text)]

    return script


# -- the bridge process ------------------------------------------------------------------------------


def free_port() -> int:
    """A loopback port that was free a moment ago (bound to port 0, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def bridge_environment(
    slack: SlackSim, coder: CoderSim, workdir: Path, port: int, scenario: Scenario
) -> dict[str, str]:
    """The bridge's settings as an operator sets them; inherited SLACK_/CODER_/BRIDGE_ values are dropped."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "CODER_", "BRIDGE_"))}
    return {
        **inherited,
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "CODER_URL": coder.url,
        "CODER_SESSION_TOKEN": CODER_TOKEN,
        "DATABASE_URL": f"sqlite:///{workdir}/bench.db",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "json",  # one record per line, so the log summary can group records
        **scenario.bridge_env,
    }


class BridgeProcess:
    """``python -m bridge serve`` in its own process, its stdout and stderr kept in a log file."""

    def __init__(self, process: asyncio.subprocess.Process, port: int, log_path: Path) -> None:
        self.process = process
        self.port = port
        self.log_path = log_path

    @classmethod
    async def start(cls, env: Mapping[str, str], workdir: Path) -> BridgeProcess:
        """Start the bridge (in ``workdir``, so no stray ``.env`` is read) and wait until it is ready."""
        log_path = workdir / "bridge.log"
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bridge", "serve", cwd=workdir, env=dict(env), stdout=log, stderr=log
            )
        bridge = cls(process, int(env["PORT"]), log_path)
        try:
            await bridge.wait_ready()
        except BaseException:
            await bridge.stop()
            raise
        return bridge

    async def wait_ready(self) -> None:
        """Poll ``GET /readyz`` until it answers 200; fail with the bridge's log if it never does."""
        url = f"http://127.0.0.1:{self.port}/readyz"
        deadline = time.monotonic() + READY_TIMEOUT
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline and self.process.returncode is None:
                try:
                    async with session.get(url) as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(READY_POLL)
        log = self.log_path.read_text(errors="replace")
        raise RuntimeError(f"the bridge did not become ready (exit code {self.process.returncode}):\n{log}")

    async def stop(self) -> int | None:
        """SIGTERM, then wait for the clean shutdown; the exit code (None if it had to be killed)."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            return None


# -- driving the workspace ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def simulators(
    agent: Script, part_interval: float, *, time_scale: float = 1.0, rate_limits: bool = True
) -> AsyncIterator[tuple[CoderSim, SlackSim]]:
    """Fresh Coder and Slack simulators in this process (one clock for both), the agent playing
    ``agent`` at a part every ``part_interval`` seconds.

    The garbage collector is off meanwhile: the simulators keep every frame and call they saw, and
    with 1,000 chats a full collection of those paused this process for up to 400 ms, stamping the
    calls that arrived meanwhile late and charging the pause to the bridge. What is measured is the
    bridge; the harness must not add to it."""
    gc.disable()
    try:
        async with (
            CoderSim(
                tokens={CODER_TOKEN: "alice"}, part_interval=part_interval, start_delay=0.0, agent=agent
            ) as coder,
            SlackSim(
                signing_secret=SIGNING_SECRET, time_scale=time_scale, rate_limits_enabled=rate_limits
            ) as slack,
        ):
            yield coder, slack
    finally:
        gc.enable()


def add_channels(slack: SlackSim, count: int) -> list[str]:
    """One channel per chat, so Slack's ~1 message/s per channel does not throttle the posts."""
    channels = [f"CBENCH{i:04d}" for i in range(count)]
    for i, channel in enumerate(channels):
        slack.add_channel(channel, f"bench-{i}", kind="public", members=(slack.alice, slack.bot_user_id))
    return channels


async def mention_everywhere(slack: SlackSim, channels: Sequence[str]) -> None:
    """Alice mentions the bot in every channel at once: one new chat per channel."""
    await asyncio.gather(
        *(
            slack.user_says(slack.alice, channel, f"<@{slack.bot_user_id}> task {i}")
            for i, channel in enumerate(channels)
        )
    )


class FinalTexts:
    """Which chats have finished their turn with every reply's final text shown in Slack.

    ``all_shown`` runs on every simulator state change while parts stream, so it remembers the chats
    already seen finished and stops at the first chat that is not.
    """

    def __init__(self, slack: SlackSim, coder: CoderSim, expected: int, *, steps_shown: bool) -> None:
        self._slack = slack
        self._coder = coder
        self._expected = expected
        self._steps_shown = steps_shown
        self._finished: set[str] = set()

    def all_shown(self) -> bool:
        """True once ``expected`` chats exist and each shows its final texts."""
        for chat in self._coder.chats.values():
            if chat.id not in self._finished:
                if not self.shows_final(chat):
                    return False
                self._finished.add(chat.id)
        return len(self._finished) >= self._expected

    def count(self) -> int:
        """How many chats show their final texts now."""
        return sum(1 for chat in self._coder.chats.values() if self.shows_final(chat))

    def shows_final(self, chat: SimChat) -> bool:
        """The chat's turn is over and its thread shows each of its replies' final text."""
        if chat.status != "waiting":
            return False
        thread = self._slack.thread(chat.labels["slack_channel"], chat.labels["slack_thread"])
        shown = {m.visible_text for m in thread if m.bot_id}
        return all(text in shown for text in assistant_texts(chat, steps=self._steps_shown))


async def wait_for_final_texts(
    slack: SlackSim, coder: CoderSim, expected: int, timeout: float, *, steps_shown: bool = True
) -> int:
    """Wait (up to ``timeout``) until every chat's final replies are in Slack; how many are.
    ``steps_shown``: the thread shows a turn's intermediate texts as replies (the full thread style)."""
    finals = FinalTexts(slack, coder, expected, steps_shown=steps_shown)
    with contextlib.suppress(TimeoutError):
        await wait_either(slack, coder, finals.all_shown, timeout)
    return finals.count()


# -- measuring ---------------------------------------------------------------------------------------


def message_text(message: Mapping[str, Any]) -> str:
    """A simulated chat message's text parts, joined."""
    return "".join(p.get("text", "") for p in message.get("content") or [] if p.get("type") == "text")


def assistant_texts(chat: SimChat, *, steps: bool = True) -> list[str]:
    """The texts of a chat's persisted assistant messages (those with any text); without ``steps``,
    only those that call no tool (a turn's final text, what a compact thread posts)."""
    texts = []
    for message in chat.messages:
        calls_tools = any(p["type"] == "tool-call" for p in message.get("content") or [])
        if message["role"] == "assistant" and (steps or not calls_tools):
            text = message_text(message)
            if text.strip():
                texts.append(text)
    return texts


def streamed_parts(coder: CoderSim) -> Iterator[StreamedPart]:
    """Every assistant text part in the order the simulator wrote it, with the reply text so far.

    The running text restarts after an assistant ``message`` (that reply is complete; the bridge
    shows the next one as a new Slack message) and at a ``status`` event: a turn starts, or a stream
    (re)connects and its snapshot replays the turn's parts from the beginning.
    """
    so_far: dict[str, str] = defaultdict(str)
    for sent, chat_id, events in coder.frame_log:
        for event in events:
            kind = event.get("type")
            if kind == "status" or (kind == "message" and event["message"]["role"] == "assistant"):
                so_far[chat_id] = ""
            elif kind == "message_part" and _is_assistant_text(event["message_part"]):
                so_far[chat_id] += event["message_part"]["part"]["text"]
                if so_far[chat_id].strip():
                    yield StreamedPart(chat_id, sent, so_far[chat_id])


def _is_assistant_text(message_part: Mapping[str, Any]) -> bool:
    return bool(message_part["role"] == "assistant" and message_part["part"]["type"] == "text")


def slack_texts(slack: SlackSim) -> dict[Thread, list[Shown]]:
    """Successful posts and edits of bot messages, by thread, in arrival order."""
    by_thread: dict[Thread, list[Shown]] = defaultdict(list)
    for call in slack.calls:
        if call.method not in POSTING_METHODS or not call.ok:
            continue
        channel = str(call.params.get("channel"))
        if call.method == "chat.postMessage":
            root = call.params.get("thread_ts")
        else:
            message = slack.message(channel, str(call.params.get("ts")))
            root = message.thread_ts if message is not None else None
        text = call.params.get("markdown_text", call.params.get("text"))
        if root is not None and text is not None:
            by_thread[(channel, str(root))].append(Shown(call.time, str(text)))
    return by_thread


def first_showing(shown: Sequence[Shown], after: float, text: str) -> float | None:
    """Time of the first call at or after ``after`` whose text contains ``text``; None if none did."""
    start = bisect.bisect_left([s.time for s in shown], after)
    return next((s.time for s in shown[start:] if text in s.text), None)


def thread_of(coder: CoderSim, chat_id: str) -> Thread:
    """The Slack thread a chat was started from, read from the labels the bridge gave it."""
    labels = coder.chats[chat_id].labels
    return labels["slack_channel"], labels["slack_thread"]


def part_latencies(
    coder: CoderSim, parts: Sequence[StreamedPart], texts: Mapping[Thread, Sequence[Shown]]
) -> tuple[list[float], int]:
    """Seconds from each part's frame to the Slack call showing it, and how many were never shown."""
    latencies: list[float] = []
    missing = 0
    for part in parts:
        shown_at = first_showing(texts.get(thread_of(coder, part.chat_id), []), part.sent, part.reply_so_far)
        if shown_at is None:
            missing += 1
        else:
            latencies.append(shown_at - part.sent)
    return latencies, missing


def drain_time(coder: CoderSim, texts: Mapping[Thread, Sequence[Shown]]) -> float | None:
    """Seconds from the last frame Coder wrote to the last call that showed a chat's final reply."""
    if not coder.frame_log:
        return None
    last_frame = coder.frame_log[-1][0]
    final_calls = []
    for chat in coder.chats.values():
        for text in assistant_texts(chat):
            shown_at = first_showing(texts.get(thread_of(coder, chat.id), []), float("-inf"), text)
            if shown_at is None:
                return None
            final_calls.append(shown_at)
    return max(final_calls) - last_frame if final_calls else None


def stream_lags(coder: CoderSim) -> list[float]:
    """Per chat, seconds from its creation in Coder (when its turn starts) to its first stream frame.

    ``created_at`` is wall-clock time and frames are stamped with the monotonic clock, so the frame
    times are moved onto the wall clock with the offset between the two clocks now.
    """
    offset = time.time() - time.monotonic()
    first_frames: dict[str, float] = {}
    for sent, chat_id, _ in coder.frame_log:
        first_frames.setdefault(chat_id, sent + offset)
    return [
        first_frames[chat.id] - datetime.fromisoformat(chat.created_at).timestamp()
        for chat in coder.chats.values()
        if chat.id in first_frames
    ]


def update_rate(slack: SlackSim) -> float | None:
    """Successful ``chat.update`` calls per minute, from the first to the last one."""
    times = [c.time for c in slack.calls if c.method == "chat.update" and c.ok]
    if len(times) < 2:
        return None
    return (len(times) - 1) / (times[-1] - times[0]) * 60


def stream_connects(coder: CoderSim) -> int:
    """How many chat stream sockets the bridge opened (one per chat unless it had to reconnect)."""
    return sum(1 for r in coder.requests if r.method == "GET" and r.path.endswith("/stream"))


def summarise_log(text: str, limit: int = 6) -> list[str]:
    """The bridge's log records grouped by level, logger and message (digits masked), commonest first."""
    groups: Counter[str] = Counter()
    for line in text.splitlines():
        try:
            record = json.loads(line)
            key = f"{record['level']} {record['logger']}: {record['message']}"
        except (ValueError, KeyError, TypeError):
            key = f"(not a log record) {line}"
        groups[re.sub(r"\d+(\.\d+)?", "#", key)[:160]] += 1
    return [f"{count} x {key}" for key, count in groups.most_common(limit)]


# -- one scenario ------------------------------------------------------------------------------------


async def run_scenario(
    scenario: Scenario, chats: int, reply: str, timeout: float, part_interval: float = PART_INTERVAL
) -> Result:
    """Fresh simulators, database and bridge; stream ``chats`` replies at once (a part every
    ``part_interval`` seconds each); measure."""
    started, cpu_before = time.monotonic(), CpuTime.now()
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        workdir = Path(tmp)
        async with simulators(reply_script(reply), part_interval, rate_limits=scenario.slack_rate_limits) as (
            coder,
            slack,
        ):
            channels = add_channels(slack, chats)
            env = bridge_environment(slack, coder, workdir, free_port(), scenario)
            bridge = await BridgeProcess.start(env, workdir)
            slack.event_url = f"http://127.0.0.1:{bridge.port}/slack/events"
            try:
                await mention_everywhere(slack, channels)
                complete = await wait_for_final_texts(slack, coder, chats, timeout)
            finally:
                exit_code = await bridge.stop()
            texts = slack_texts(slack)
            parts = list(streamed_parts(coder))
            latencies, missing = part_latencies(coder, parts, texts)
            return Result(
                scenario=scenario,
                chats=chats,
                chats_created=len(coder.chats),
                streamed_too_late=len(coder.chats) - len({p.chat_id for p in parts}),
                stream_lags=stream_lags(coder),
                parts_expected=chats * len(reply.split()),
                latencies=latencies,
                missing=missing,
                slack_calls=len(slack.calls),
                ratelimited=slack.ratelimited_count,
                finals_complete=complete,
                drain=drain_time(coder, texts),
                wall=time.monotonic() - started,
                bridge_exit=exit_code,
                cpu=CpuTime.now() - cpu_before,
                calls_by_method=Counter(c.method for c in slack.calls),
                update_rate=update_rate(slack),
                stream_connects=stream_connects(coder),
                unacknowledged=sum(1 for d in slack.deliveries if d.failure is not None),
                bridge_log=summarise_log(bridge.log_path.read_text(errors="replace")),
            )


# -- reporting ---------------------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile (p99 of 4000 values is the 3960th smallest); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def milliseconds(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:.0f}"


TABLE_HEADER = (
    "| scenario | chats | parts streamed | parts measured | missing | p50 ms | p99 ms | max ms "
    "| Slack calls | 429s | final texts complete | last frame → last final | wall |\n"
    "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
)


def table_row(result: Result) -> str:
    """One Markdown table row: the figures of one scenario."""
    lat = result.latencies
    drain = "–" if result.drain is None else f"{result.drain:.2f} s"
    return (
        f"| {result.scenario.title} | {result.chats} | {len(lat) + result.missing}/{result.parts_expected} "
        f"| {len(lat)} | {result.missing} "
        f"| {milliseconds(percentile(lat, 0.5))} | {milliseconds(percentile(lat, 0.99))} "
        f"| {milliseconds(max(lat, default=None))} | {result.slack_calls} | {result.ratelimited} "
        f"| {result.finals_complete}/{result.chats} | {drain} | {result.wall:.1f} s |"
    )


def print_details(result: Result) -> None:
    """What the table leaves out: settings, calls by method, bridge exit code and log summary."""
    env = " ".join(f"{k}={v}" for k, v in result.scenario.bridge_env.items())
    limits = "on (real scale)" if result.scenario.slack_rate_limits else "off"
    methods = ", ".join(f"{m} {n}" for m, n in sorted(result.calls_by_method.items()))
    print(f"\n{result.scenario.title}: Slack sim rate limits {limits}; bridge {env}")
    rate = "–" if result.update_rate is None else f"{result.update_rate:.0f}"
    print(f"  Slack calls: {methods}; chat.update rate {rate}/min")
    lags = result.stream_lags
    print(
        f"  chats created: {result.chats_created}/{result.chats}; "
        f"stream sockets opened: {result.stream_connects}; from a chat's creation to its stream's first "
        f"frame: p50 {milliseconds(percentile(lags, 0.5))} ms, max {milliseconds(max(lags, default=None))} ms"
    )
    print(
        f"  chats whose stream opened only after their turn had ended (so no part streamed): "
        f"{result.streamed_too_late}; Slack event deliveries not acknowledged within 3 s: "
        f"{result.unacknowledged}"
    )
    print(
        f"  CPU: bridge {result.cpu.bridge:.1f} s, simulators and measuring {result.cpu.simulators:.1f} s, "
        f"in {result.wall:.1f} s of wall time"
    )
    print(f"  bridge exit code after SIGTERM: {result.bridge_exit}")
    print(f"  bridge log ({'empty' if not result.bridge_log else 'commonest records'}):")
    for line in result.bridge_log:
        print(f"    {line}")


def print_environment_line() -> None:
    """Date, machine and versions: what every benchmark's output starts with."""
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"machine: {os.cpu_count()} cores, {platform.platform()}")
    print(f"python: {platform.python_version()} ({sys.executable}); bridge {__version__}")


def print_environment(args: argparse.Namespace) -> None:
    print_environment_line()
    print(
        f"setup: {args.chats} chats (limits scenario: {args.limits_chats}), {args.parts} one-word parts "
        f"{PART_INTERVAL * 1000:.0f} ms apart per reply, seed {args.seed}, "
        f"final-text deadline {args.timeout:.0f} s per scenario"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--chats", type=int, default=100, help="chats streaming at once (default 100)")
    parser.add_argument(
        "--limits-chats",
        type=int,
        default=20,
        help="chats in the 'limits' scenario, where ~50 edits/min for the workspace make each chat slow",
    )
    parser.add_argument("--parts", type=int, default=40, help="one-word parts per reply (default 40)")
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, from {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the reply's words (default 1)")
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds each scenario waits for the final texts"
    )
    args = parser.parse_args(argv)
    unknown = set(args.scenarios.split(",")) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    return args


async def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print_environment(args)
    reply = reply_text(args.parts, args.seed)
    results = []
    for key in args.scenarios.split(","):
        chats = args.limits_chats if key == "limits" else args.chats
        print(f"running {SCENARIOS[key].title} ({chats} chats) …", flush=True)
        results.append(await run_scenario(SCENARIOS[key], chats, reply, args.timeout))
    for result in results:
        print_details(result)
    print()
    print(TABLE_HEADER)
    for result in results:
        print(table_row(result))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
