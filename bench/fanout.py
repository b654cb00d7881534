"""Fan-out benchmark: 200 chats streaming at once into one Slack workspace under Slack's limits.

The question (from the issue): with many agents working at once, does the bridge stay within Slack's
budgets (no 429s), spend few calls per turn (against a naive relay that makes one call per streamed
part), share the workspace's ``chat.update`` budget fairly (no thread waits much longer than its fair
share), and how long do final texts wait? Then, with every limit lifted, what does the relay itself
add between a Coder event and the Slack call (reusing ``latency.py``'s scenario at 100 and 1,000 chats).

The Slack simulator enforces Slack's published limits (``bridge.sim.slack_limits``) with a time scale,
and the bridge's budgets and edit interval are scaled to match, so the run is the same as a real
workspace only ``1/time_scale`` times faster. Durations in the fan-out table are in *Slack seconds*
(real seconds divided by the time scale), so they read as they would in a real workspace. The bridge
runs as its own ``python -m bridge serve`` process, like in ``latency.py``.

    .venv/bin/python bench/fanout.py [--chats 200] [--channels 50] [--time-scale 0.02]
                                     [--overhead-chats 100,1000]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latency import (
    SCENARIOS,
    BridgeProcess,
    Result,
    Scenario,
    Shown,
    Thread,
    bridge_environment,
    first_showing,
    free_port,
    message_text,
    milliseconds,
    percentile,
    print_environment_line,
    reply_text,
    run_scenario,
    simulators,
    slack_texts,
    thread_of,
    wait_for_final_texts,
)

from bridge.relay.limits import METHOD_BUDGETS
from bridge.sim.coder import CoderSim
from bridge.sim.coder_agent import Script, Step, Text, ToolCall
from bridge.sim.slack import SlackSim
from bridge.slack.blocks import is_card

TOOLS = 6
"""Tool calls per turn, between the turn's two replies."""


@dataclass(frozen=True)
class Fanout:
    """The figures of the fan-out run (durations in Slack seconds)."""

    chats: int
    channels: int
    time_scale: float
    finals_complete: int
    ratelimited: int
    calls_per_turn: float
    naive_per_turn: float
    calls_per_turn_second: float
    turn_seconds: float
    longest_gap: float
    fair_share: float
    final_delays: list[float]
    reply_delays: list[float]
    """Per turn: from the agent's last chunk of its final text to the first Slack call showing it whole."""
    wall: float
    calls_by_method: dict[str, str]
    """Per method: calls made (of which answered 429)."""


def reply_delays(coder: CoderSim, texts: Mapping[Thread, Sequence[Shown]]) -> list[float]:
    """Per chat, how long its turn's answer (its last assistant text) took to show whole in Slack
    after the agent streamed its last chunk: what a person waiting for the answer sees."""
    last_chunk: dict[str, float] = {}
    answered: dict[str, tuple[float, str]] = {}
    for sent, chat_id, events in coder.frame_log:
        for event in events:
            part = event.get("message_part") or {}
            if event.get("type") == "message_part" and (part.get("part") or {}).get("type") == "text":
                last_chunk[chat_id] = sent
            message = event.get("message") if event.get("type") == "message" else None
            if message and message.get("role") == "assistant":
                text = message_text(message)
                if text.strip():
                    answered[chat_id] = (last_chunk.get(chat_id, sent), text)
    delays = []
    for chat_id, (chunk, text) in answered.items():
        # As a message of its own: a compact card's latest line may show a short answer sooner.
        replies = [s for s in texts.get(thread_of(coder, chat_id), []) if not is_card(s.text)]
        shown = first_showing(replies, float("-inf"), text)
        if shown is not None:
            delays.append(shown - chunk)
    return delays


def turn_script(words: int) -> Script:
    """A turn like an agent's: a plan, ``TOOLS`` tool calls, and an answer, streamed word by word."""

    def script(prompt: str) -> Sequence[Step]:
        tools = [ToolCall("execute", {"command": f"make check-{n}"}, {"exit_code": 0}) for n in range(TOOLS)]
        return [Text(reply_text(words, 1)), *tools, Text(reply_text(words, 2))]

    return script


def windows(coder: CoderSim) -> dict[str, tuple[float, float]]:
    """Per chat, its first and last stream frame: while it is active."""
    found: dict[str, tuple[float, float]] = {}
    for sent, chat_id, _ in coder.frame_log:
        first, _last = found.get(chat_id, (sent, sent))
        found[chat_id] = (first, sent)
    return found


def peak_active(spans: Sequence[tuple[float, float]]) -> int:
    """The most chats active at one moment."""
    edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    active = peak = 0
    for _, step in edges:
        active += step
        peak = max(peak, active)
    return peak


def visible_frames(coder: CoderSim) -> dict[str, list[float]]:
    """Per chat, when Coder sent something the thread should show (all but a tool call's argument
    deltas, which the status card does not show until the call is whole)."""
    found: dict[str, list[float]] = defaultdict(list)
    for sent, chat_id, events in coder.frame_log:
        if any("args_delta" not in (e.get("message_part") or {}).get("part", {}) for e in events):
            found[chat_id].append(sent)
    return found


def longest_wait(shown: Sequence[Shown], frames: Sequence[float]) -> float:
    """The longest a thread had something new to show and got no Slack call: from the first visible
    frame after a call to the next call (a thread with nothing new is not waiting)."""
    times = [s.time for s in shown]
    worst = 0.0
    for previous, call in itertools.pairwise([float("-inf"), *times]):
        first = next((f for f in frames if previous < f < call), None)  # frames are few per thread
        if first is not None:
            worst = max(worst, call - first)
    return worst


def naive_calls(coder: CoderSim) -> dict[str, int]:
    """What a relay posting every part would call per chat: one call per streamed event."""
    calls: dict[str, int] = defaultdict(int)
    for _, chat_id, events in coder.frame_log:
        calls[chat_id] += sum(1 for e in events if e.get("type") in ("message_part", "status", "message"))
    return calls


def final_delays(coder: CoderSim, texts: Mapping[Thread, Sequence[Shown]]) -> list[float]:
    """Per finished reply: from the frame that carried it whole to the first call that showed it."""
    delays = []
    for sent, chat_id, events in coder.frame_log:
        for event in events:
            message = event.get("message") if event.get("type") == "message" else None
            if not message or message.get("role") != "assistant":
                continue
            text = message_text(message)
            if text.strip():
                shown = first_showing(texts.get(thread_of(coder, chat_id), []), float("-inf"), text)
                if shown is not None:
                    delays.append(max(0.0, shown - sent))
    return delays


async def run_fanout(
    chats: int, channels: int, time_scale: float, words: int, part_interval: float, style: str
) -> Fanout:
    """Fresh simulators, database and bridge; ``chats`` turns at once over ``channels`` channels, the
    bridge in thread style ``style``."""
    started = time.monotonic()
    scenario = Scenario(
        "fanout",
        "fan-out",
        slack_rate_limits=True,
        bridge_env={
            "BRIDGE_EDIT_INTERVAL": f"{time_scale}",
            "BRIDGE_SLACK_RATE_SCALE": f"{1 / time_scale}",
            "BRIDGE_THREAD_STYLE": style,
        },
    )
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        async with simulators(turn_script(words), part_interval, time_scale=time_scale) as (coder, slack):
            ids = [f"CFAN{i:04d}" for i in range(channels)]
            for i, channel in enumerate(ids):
                slack.add_channel(channel, f"fanout-{i}", members=(slack.alice, slack.bot_user_id))
            bridge = await BridgeProcess.start(
                bridge_environment(slack, coder, Path(tmp), free_port(), scenario), Path(tmp)
            )
            slack.event_url = f"http://127.0.0.1:{bridge.port}/slack/events"
            try:
                mention = f"<@{slack.bot_user_id}> task"
                await asyncio.gather(
                    *(slack.user_says(slack.alice, ids[n % channels], mention) for n in range(chats))
                )
                complete = await wait_for_final_texts(
                    slack, coder, chats, timeout=600, steps_shown=style == "full"
                )
            finally:
                await bridge.stop()
            return measure(slack, coder, chats, channels, time_scale, complete, time.monotonic() - started)


def measure(
    slack: SlackSim, coder: CoderSim, chats: int, channels: int, time_scale: float, complete: int, wall: float
) -> Fanout:
    """The fan-out figures from what both simulators recorded."""
    texts = slack_texts(slack)
    spans = windows(coder)
    frames = visible_frames(coder)
    gaps = [longest_wait(texts.get(thread_of(coder, chat), []), frames[chat]) for chat in spans]
    update_rate = METHOD_BUDGETS["chat.update"].per_minute / 60 / time_scale  # per real second
    turn = sum(b - a for a, b in spans.values()) / max(len(spans), 1) / time_scale
    calls = sum(1 for c in slack.calls if c.method not in ("auth.test",)) / chats
    return Fanout(
        chats=chats,
        channels=channels,
        time_scale=time_scale,
        finals_complete=complete,
        ratelimited=slack.ratelimited_count,
        calls_per_turn=calls,
        naive_per_turn=sum(naive_calls(coder).values()) / chats,
        calls_per_turn_second=calls / turn if turn else 0.0,
        turn_seconds=turn,
        longest_gap=max(gaps, default=0.0) / time_scale,
        fair_share=peak_active(list(spans.values())) / update_rate / time_scale,
        final_delays=[d / time_scale for d in final_delays(coder, texts)],
        reply_delays=[d / time_scale for d in reply_delays(coder, texts)],
        wall=wall,
        calls_by_method={
            method: f"{sum(1 for c in slack.calls if c.method == method)}"
            f" ({sum(1 for c in slack.calls if c.method == method and c.status == 429)})"
            for method in sorted({c.method for c in slack.calls})
        },
    )


def seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} s"


def fanout_rows(f: Fanout) -> list[tuple[str, str, str]]:
    """The fan-out measures of one run: each with its goal and what was measured."""
    return [
        ("Slack 429s received", "0", f"{f.ratelimited}"),
        ("final texts complete", f"{f.chats}/{f.chats}", f"{f.finals_complete}/{f.chats}"),
        (
            "Slack calls per agent turn (naive relay: one per part)",
            "≤ 1 per second of turn + constant",
            f"{f.calls_per_turn:.1f} (naive {f.naive_per_turn:.0f}); turn {f.turn_seconds:.0f} s → "
            f"{f.calls_per_turn_second:.3f} per second of turn",
        ),
        (
            "longest wait of an active thread vs its fair share",
            "≤ 1.5×",
            f"{f.longest_gap:.0f} s vs {f.fair_share:.0f} s = {f.longest_gap / f.fair_share:.2f}×",
        ),
        (
            "final text delay p50 / p99",
            "–",
            f"{seconds(percentile(f.final_delays, 0.5))} / {seconds(percentile(f.final_delays, 0.99))}",
        ),
        (
            "turn's answer shown after its last chunk, p50 / max",
            "≤ 2 s / ≤ 10 s",
            f"{seconds(percentile(f.reply_delays, 0.5))} / {seconds(max(f.reply_delays, default=None))}",
        ),
    ]


def report(fanouts: Mapping[str, Fanout], overhead: Sequence[Result]) -> str:
    """The Markdown tables: each fan-out measure with its goal and what each thread style measured,
    side by side; then the relay's overhead."""
    styles = list(fanouts)
    columns = [fanout_rows(fanouts[style]) for style in styles]
    lines = ["| measure | goal | " + " | ".join(f"measured, {s} style" for s in styles) + " |"]
    lines.append("|---|---|" + "---|" * len(styles))
    for index, (measure, goal, _) in enumerate(columns[0]):
        lines.append(f"| {measure} | {goal} | " + " | ".join(c[index][2] for c in columns) + " |")
    goals = {100: "≤ 20 ms", 1000: "≤ 100 ms"}
    if overhead:
        lines += ["", "| measure | goal | measured |", "|---|---|---|"]
    for result in overhead:
        lat = result.latencies
        lines.append(
            f"| relay overhead p50 / p99, {result.chats} chats, no limits "
            f"| p99 {goals.get(result.chats, '–')} | "
            f"{milliseconds(percentile(lat, 0.5))} / {milliseconds(percentile(lat, 0.99))} ms "
            f"({len(lat)} parts, {result.missing} missing, {result.finals_complete} final) |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--chats", type=int, default=200, help="chats streaming at once (default 200)")
    parser.add_argument("--channels", type=int, default=50, help="channels they are spread over (default 50)")
    parser.add_argument(
        "--time-scale", type=float, default=0.05, help="real seconds per Slack second (default 0.05)"
    )
    parser.add_argument("--words", type=int, default=20, help="words in each of a turn's two replies")
    parser.add_argument(
        "--styles", default="full,compact", help="thread styles to run the fan-out in (default full,compact)"
    )
    parser.add_argument(
        "--part-interval", type=float, default=0.5, help="real seconds between streamed parts (default 0.5)"
    )
    parser.add_argument(
        "--overhead-chats", default="100,1000", help="chat counts of the no-limit overhead runs ('' for none)"
    )
    parser.add_argument(
        "--overhead-interval", type=float, default=1.0, help="real seconds between parts in those runs"
    )
    return parser.parse_args(argv)


async def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print_environment_line()
    print(
        f"setup: fan-out {args.chats} chats over {args.channels} channels, time scale {args.time_scale}, "
        f"{TOOLS} tools and 2 × {args.words} words per turn, a part every {args.part_interval} s; "
        f"overhead runs {args.overhead_chats or 'none'}, 10 parts {args.overhead_interval} s apart",
        flush=True,
    )
    fanouts: dict[str, Fanout] = {}
    for style in args.styles.split(","):
        fanout = await run_fanout(
            args.chats, args.channels, args.time_scale, args.words, args.part_interval, style
        )
        print(f"fan-out ({style}) done in {fanout.wall:.0f} s; Slack calls (429s): {fanout.calls_by_method}")
        fanouts[style] = fanout
    overhead: list[Any] = []
    for count in (int(n) for n in args.overhead_chats.split(",") if n):
        print(f"running relay overhead with {count} chats …", flush=True)
        result = await run_scenario(
            SCENARIOS["overhead"], count, reply_text(10, 1), timeout=300, part_interval=args.overhead_interval
        )
        print(f"  done in {result.wall:.0f} s; bridge CPU {result.cpu.bridge:.1f} s", flush=True)
        overhead.append(result)
    print()
    print(report(fanouts, overhead))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
