"""One fault-injection run: the simulators here, `bridge serve` as a child process, the script, the faults.

A run plays ``conversation.PLANS`` against a real bridge process while a fault schedule, drawn from
a seeded generator, kills it (SIGKILL, restarted at once on the same database), cuts Coder's stream
sockets, and lets the simulators lose Slack acks (so Slack retries events), answer Coder calls slowly
or with 500s, and answer Slack posts and edits with 429s. What each thread finally shows is then
compared with an undisturbed run of the same script. With ``Faults.replicas`` above one, several
bridge processes share one PostgreSQL database behind a load balancer that spreads Slack's
deliveries (and their retries) over them; kills and rolling restarts hit one replica at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import os
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bridge.demo import wait_either
from bridge.sim.balancer import Balancer
from bridge.sim.coder import CoderSim, Flakiness
from bridge.sim.coder_state import SimChat
from bridge.sim.sender import AckLoss
from bridge.sim.slack import SlackSim, Storm
from bridge.slack.blocks import is_card, is_outcome, render_unqueued
from tests.faults.conversation import PLANS, gates_for_plans, make_agent
from tests.integration.conftest import (
    CODER_TOKEN,
    SIGNING_SECRET,
    assistant_texts,
    message_text,
    user_texts,
)
from tests.integration.processes import BridgeProcess, serve_env

SEED_ENV = "BRIDGE_FAULT_SEED"
WAIT = 60.0  # generous: a condition may have to outlast several crashes and restarts
NOTICE_WAIT = 8.0
_PER_RUN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|http://127\.0\.0\.1:\d+")


def session_seed() -> int:
    """``BRIDGE_FAULT_SEED`` to replay a failure, else a fresh random seed."""
    value = os.environ.get(SEED_ENV)
    return int(value) if value else random.SystemRandom().randrange(2**32)


SEED = session_seed()
"""The session's seed: every fault schedule of the session is drawn from it."""


@dataclass(frozen=True)
class Faults:
    """What a scenario injects; zero everywhere is the undisturbed reference run."""

    kills: int = 0
    """SIGKILLs of the bridge at random points of the conversation, each followed by a restart."""
    ack_loss: float = 0.0
    """Fraction of the bridge's event acks Slack never sees, so it retries them (1.0: every event)."""
    drop_every: tuple[float, float] | None = None
    """Seconds (drawn between the two) between cuts of every Coder stream socket."""
    coder_errors: float = 0.0
    """Fraction of Coder chat reads and stream connects answered 500 (a failed send is told to the
    person by design, who would then resend it: that is not a fault this suite can compare)."""
    coder_slow: float = 0.0
    """Fraction of Coder chat calls (any method) held up for ``coder_slow_seconds``."""
    coder_slow_seconds: float = 0.4
    storm: float = 0.0
    """Fraction of chat.postMessage / chat.update calls answered 429 with Retry-After."""
    socket_mode: bool = False
    replicas: int = 1
    """Bridge processes sharing the database (PostgreSQL) behind a round-robin load balancer; a kill
    hits one of them at random and starts a new one in its place."""
    rolling: bool = False
    """Restart every replica once, one after the other, with SIGTERM: a rolling deploy (run to its
    end, even when the script finishes first)."""
    slack_retry_delays: tuple[float, float, float] = (0.0, 60.0, 300.0)
    """Slack's waits before retries 1..3 in Slack seconds: its real schedule, which x time_scale 0.05
    gives 0 s, 3 s and 15 s, long enough to outlast a restart on a loaded machine (about 10 s)."""


@dataclass
class Tally:
    """What a run survived, for the summary line."""

    crashes: int = 0
    restarts: int = 0
    retries: int = 0
    drops: int = 0
    errors: int = 0
    slowed: int = 0
    rate_limited: int = 0

    def line(self) -> str:
        return (
            f"crash points {self.crashes}, rolling restarts {self.restarts}, "
            f"event retries {self.retries}, socket drops {self.drops}, "
            f"Coder 5xx {self.errors}, slow Coder answers {self.slowed}, Slack 429s {self.rate_limited}"
        )


@dataclass
class Outcome:
    """What a run ends with: each thread's bot texts, and what Coder received."""

    threads: list[list[str]]
    user_texts: list[list[str]]
    chats_per_thread: list[int]
    chats: int
    queued_left: int
    tally: Tally


@dataclass
class Run:
    """The simulators and the bridge process of one run, and the fault schedule's generator."""

    slack: SlackSim
    coder: CoderSim
    env: dict[str, str]
    workdir: Path
    faults: Faults
    rng: random.Random
    gates: dict[tuple[int, int], asyncio.Event]
    style: str
    """The bridge's thread style (``BRIDGE_THREAD_STYLE``), which decides what a thread shows."""
    balancer: Balancer | None = None
    bridges: list[BridgeProcess] = field(default_factory=list)
    roots: list[str] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)

    async def start_bridge(self) -> None:
        """Start a bridge process on the run's database and point Slack at it (at the balancer,
        which spreads deliveries over every replica, when there are several)."""
        bridge = await BridgeProcess.start(self.env, self.workdir, log=self.workdir / "bridge.log")
        self.bridges.append(bridge)
        if self.balancer is not None:
            self.balancer.upstreams = [b.events_url for b in self.bridges]
            self.slack.event_url = self.balancer.url
        elif not self.faults.socket_mode:
            self.slack.event_url = bridge.events_url

    def _leave(self, bridge: BridgeProcess) -> None:
        self.bridges.remove(bridge)
        if self.balancer is not None:
            self.balancer.upstreams = [b.events_url for b in self.bridges]

    async def crash(self) -> None:
        """SIGKILL a bridge (one of the replicas, at random) and start one again at once, as a
        supervisor (systemd, k8s) would."""
        victim = self.rng.choice(self.bridges) if len(self.bridges) > 1 else self.bridges[0]
        self._leave(victim)
        await victim.kill()
        self.tally.crashes += 1
        await self.start_bridge()

    async def restart(self) -> None:
        """SIGTERM the oldest replica, wait for it to stop, and start it again: one step of a rolling
        deploy (its work is taken over by the others meanwhile)."""
        oldest = self.bridges[0]
        self._leave(oldest)
        code, _ = await oldest.stop()
        assert code == 0, f"a replica stopped with status {code}"
        self.tally.restarts += 1
        await self.start_bridge()

    async def stop_bridge(self) -> None:
        while self.bridges:
            bridge = self.bridges[-1]
            self._leave(bridge)
            if bridge.process.returncode is None:
                await bridge.stop()

    async def until(self, predicate: Callable[[], bool], timeout: float = WAIT) -> None:
        """Wait for a condition of either simulator; a timeout says where each thread stands."""
        try:
            await wait_either(self.slack, self.coder, predicate, timeout)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.describe()}") from None

    def describe(self) -> str:
        """Each thread's chat status, the messages Coder got, and what the thread shows."""
        lines = []
        for thread, root in enumerate(self.roots):
            chat = self.chat_of(thread) if root else None
            state = f"{chat.status}, users {user_texts(chat)}, queue {len(chat.queue)}" if chat else "no chat"
            lines.append(f"thread {thread} ({state}):")
            lines.extend(f"  | {text[:160]!r}" for text in (self.bot_texts(thread) if root else []))
        return "\n".join(lines)

    # -- reading the two sides -----------------------------------------------------------------

    def chats_of(self, thread: int) -> list[SimChat]:
        root = self.roots[thread]
        return [c for c in self.coder.chats.values() if c.labels.get("slack_thread") == root]

    def chat_of(self, thread: int) -> SimChat | None:
        chats = self.chats_of(thread)
        return chats[0] if chats else None

    def bot_texts(self, thread: int) -> list[str]:
        """The thread's bot messages as a reader sees them, chat ids and Coder's address masked (they
        differ per run)."""
        messages = self.slack.thread(self.slack.general, self.roots[thread])
        return [_PER_RUN.sub("<>", m.visible_text) for m in messages if m.bot_id]

    def shown(self, thread: int, turns: int) -> bool:
        """Coder finished ``turns`` turns and the thread shows the end of every answer."""
        chat = self.chat_of(thread)
        if chat is None or chat.status != "waiting" or len(user_texts(chat)) < turns:
            return False
        shown = "\n".join(self.bot_texts(thread))
        return all(text[-80:].strip() in shown for text in assistant_texts(chat, style=self.style))

    def settled(self, thread: int) -> bool:
        """The thread is complete: every answer shown, header idle, cards done, and the requester
        told last (the bridge sends that once everything else is in Slack)."""
        if not self.shown(thread, len(PLANS[thread])):
            return False
        texts = self.bot_texts(thread)
        cards_done = all(not t.startswith("⏳") for t in texts if is_card(t))
        return bool(texts) and "💤" in texts[0] and cards_done and is_outcome(texts[-1])

    def complete(self, expected: list[list[str]] | None) -> bool:
        """Every thread settled, and showing ``expected`` when given."""
        if not all(self.settled(i) for i in range(len(PLANS))):
            return False
        shown = [self.bot_texts(i) for i in range(len(PLANS))]
        return expected is None or comparable(shown) == comparable(expected)

    # -- playing the script --------------------------------------------------------------------

    async def play(self) -> None:
        """Play every thread at once; returns when each thread's last message was sent."""
        self.roots = [""] * len(PLANS)
        await asyncio.gather(*(self._play_thread(i) for i in range(len(PLANS))))

    async def _play_thread(self, thread: int) -> None:
        plan = PLANS[thread]
        slack = self.slack
        mention = f"<@{slack.bot_user_id}> {plan[0].text}"
        self.roots[thread] = await slack.user_says(slack.alice, slack.general, mention, wait_ack=False)
        for index, turn in enumerate(plan[1:], start=1):
            await self._follow_up(thread, index, turn.text, queued=turn.queued)

    async def _follow_up(self, thread: int, index: int, text: str, *, queued: bool) -> None:
        if queued:  # the previous turn is held at its gate: Coder must queue this one
            await self.until(lambda: self._running(thread, index))
            await self._reply(thread, text)
            await self.until(lambda: self._queued(thread, text))
            # The person sees "queued" before the agent goes on, so the thread reads the same in
            # every run. A notice lost in a crash shows up as a difference at the end, not as a hang.
            with contextlib.suppress(TimeoutError):
                await self.until(lambda: self._told_queued(thread, index), timeout=NOTICE_WAIT)
            self.gates[(thread, index - 1)].set()
        else:  # a person reads the answer and waits to be told the agent is done, then replies
            await self.until(lambda: self.shown(thread, index))
            with contextlib.suppress(TimeoutError):
                await self.until(lambda: self._told_done(thread, index), timeout=NOTICE_WAIT)
            await self._reply(thread, text)

    async def _reply(self, thread: int, text: str) -> None:
        slack = self.slack
        await slack.user_says(slack.alice, slack.general, text, thread_ts=self.roots[thread], wait_ack=False)

    def _running(self, thread: int, turns: int) -> bool:
        chat = self.chat_of(thread)
        return chat is not None and chat.status == "running" and len(user_texts(chat)) == turns

    def _told_done(self, thread: int, index: int) -> bool:
        """The thread mentions the requester once for every turn before ``index`` that ended idle
        (a turn followed by a queued message ends busy: Coder goes straight on)."""
        plan = PLANS[thread]
        idle_ends = sum(1 for turn in range(index) if not plan[turn + 1].queued)
        return sum(1 for t in self.bot_texts(thread) if is_outcome(t)) >= idle_ends

    def _told_queued(self, thread: int, index: int) -> bool:
        """The thread shows a "queued" notice for every queued follow-up up to ``index``."""
        notices = sum(1 for turn in PLANS[thread][: index + 1] if turn.queued)
        return sum(1 for t in self.bot_texts(thread) if t.startswith("📥")) >= notices

    def _queued(self, thread: int, text: str) -> bool:
        chat = self.chat_of(thread)
        return chat is not None and any(message_text(q) == text for q in chat.queue)

    # -- faults --------------------------------------------------------------------------------

    async def chaos(self, calm: asyncio.Event) -> None:
        """The fault schedule: kills, restarts and socket drops at random moments until ``calm`` is set.

        The random delays are the schedule, not waits for an event; a kill is never cut short, so
        no bridge process is left behind.
        """
        await asyncio.gather(self._kills(calm), self._rolls(calm), self._drops(calm))

    async def _rolls(self, calm: asyncio.Event) -> None:
        """A rolling deploy runs to its end, also past the script's last message: every replica is
        restarted once, a short random while after the previous one is back."""
        for _ in range(self.faults.replicas if self.faults.rolling else 0):
            await _calm_within(calm, self.rng.uniform(0.2, 0.8))
            await self.restart()

    async def _kills(self, calm: asyncio.Event) -> None:
        for _ in range(self.faults.kills):
            if await _calm_within(calm, self.rng.uniform(0.2, 1.5)):
                return
            await self.crash()

    async def _drops(self, calm: asyncio.Event) -> None:
        if self.faults.drop_every is None:
            return
        while not await _calm_within(calm, self.rng.uniform(*self.faults.drop_every)):
            self.tally.drops += self.coder.drop_streams()

    def arm(self) -> None:
        """Set the simulators' fault knobs, each from its own seeded generator."""
        f = self.faults
        if f.ack_loss:
            self.slack.ack_loss = AckLoss(f.ack_loss, random.Random(self.rng.random()))
        if f.storm:
            storm = Storm(frozenset({"chat.postMessage", "chat.update"}), f.storm, 0.2)
            storm.rng = random.Random(self.rng.random())
            self.slack.storm = storm
        if f.coder_errors or f.coder_slow:
            self.coder.flakiness = Flakiness(  # one chat's calls: a bridge that cannot start is by design
                paths=re.compile(r"/chats/[0-9a-f-]{36}"),
                error_rate=f.coder_errors,
                slow_rate=f.coder_slow,
                slow_seconds=f.coder_slow_seconds,
                rng=random.Random(self.rng.random()),
            )

    def count(self) -> None:
        """Fill the tally from the simulators' counters."""
        self.tally.retries = sum(1 for d in self.slack.deliveries if d.attempt > 0)
        self.tally.rate_limited = self.slack.ratelimited_count
        if self.coder.flakiness is not None:
            self.tally.errors = self.coder.flakiness.errors
            self.tally.slowed = self.coder.flakiness.slowed

    def outcome(self) -> Outcome:
        chats = [self.chat_of(i) for i in range(len(PLANS))]
        return Outcome(
            threads=[self.bot_texts(i) for i in range(len(PLANS))],
            user_texts=[user_texts(c) if c else [] for c in chats],
            chats_per_thread=[len(self.chats_of(i)) for i in range(len(PLANS))],
            chats=len(self.coder.chats),
            queued_left=sum(len(c.queue) for c in chats if c),
            tally=self.tally,
        )


_LEFT_QUEUE = {render_unqueued(taken=False), render_unqueued(taken=True)}
"""The notice a queued follow-up ends with records a passing state, which a crash can hide: a
follow-up Coder took while the bridge was down is found delivered after the restart, so the bridge
never knew it was queued (no notice), or sees it gone from the queue without knowing who took it
("no longer queued"). Such notices are left out of the comparison; each has a slot of its own (the
follow-up's ts), so none can be doubled."""


def comparable(
    threads: list[list[str]], *, cards_in_place: bool = False
) -> list[tuple[list[str], list[str]]]:
    """Per thread: its texts in order, the turns' status cards among them with ``cards_in_place``,
    else apart as a sorted list.

    A card lives in memory only (the stream's replay rebuilds it), so after a kill it is posted
    again when the replay reaches it, which can be after the reply below it that was stored: runs
    with kills compare only the cards' final texts.
    """
    return [
        (
            [t for t in texts if (cards_in_place or not is_card(t)) and t not in _LEFT_QUEUE],
            [] if cards_in_place else sorted(t for t in texts if is_card(t)),
        )
        for texts in threads
    ]


async def _calm_within(calm: asyncio.Event, seconds: float) -> bool:
    """Whether ``calm`` gets set within ``seconds``."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(calm.wait(), seconds)
    return calm.is_set()


async def run_script(
    workdir: Path,
    database_url: str,
    generation: str,
    faults: Faults,
    rng: random.Random,
    expected: list[list[str]] | None = None,
    *,
    style: str = "compact",
) -> Outcome:
    """Play the script once under ``faults``; returns once every thread is settled and Slack has
    finished every delivery (retries included), with the bridge stopped.

    With ``expected`` (the reference run's threads) it waits a while longer for the threads to
    show exactly that, and returns what they show then either way: the caller compares.
    """
    gates = gates_for_plans()
    async with (
        CoderSim(
            tokens={CODER_TOKEN: "alice"},
            part_interval=0.002,
            chunk_words=6,
            generation=generation,  # type: ignore[arg-type]
            agent=make_agent(gates),
            scripts={},
        ) as coder,
        SlackSim(signing_secret=SIGNING_SECRET, time_scale=0.05) as slack,
        contextlib.AsyncExitStack() as stack,
    ):
        slack.retry_delays = faults.slack_retry_delays
        extra = {
            "DATABASE_URL": database_url,
            "BRIDGE_RECONNECT_MAX_DELAY": "0.5",
            "BRIDGE_THREAD_STYLE": style,
        }
        if faults.socket_mode:
            extra["SLACK_APP_TOKEN"] = slack.app_token
        if faults.replicas > 1:  # takeovers within seconds
            extra.update({"BRIDGE_LEASE_DURATION": "3", "BRIDGE_LEASE_HEARTBEAT": "0.5"})
        env = serve_env(slack, coder, workdir, **extra)
        run = Run(slack, coder, env, workdir, faults, rng, gates, style)
        run.arm()
        if faults.replicas > 1:
            run.balancer = await stack.enter_async_context(Balancer())
        for _ in range(faults.replicas):
            await run.start_bridge()
        calm = asyncio.Event()
        chaos = asyncio.create_task(run.chaos(calm))
        try:
            try:
                await run.play()
                await run.until(lambda: all(run.shown(i, len(plan)) for i, plan in enumerate(PLANS)))
            finally:
                calm.set()
                await chaos
            await run.until(lambda: slack.deliveries_under_way == 0)
            if expected is None:
                await run.until(lambda: run.complete(None))
            else:
                with contextlib.suppress(TimeoutError):
                    await run.until(lambda: run.complete(expected), timeout=NOTICE_WAIT)
        finally:
            await run.stop_bridge()
        run.count()
        return run.outcome()


_references: dict[tuple[str, str], Outcome] = {}


async def reference_run(generation: str, workdir: Path, style: str = "compact") -> Outcome:
    """The undisturbed run of the script for a Coder generation and thread style (played once per
    session and worker)."""
    if (generation, style) not in _references:
        _references[generation, style] = await run_script(
            workdir, f"sqlite:///{workdir}/reference.db", generation, Faults(), random.Random(0), style=style
        )
    return _references[generation, style]


def _diff(expected: list[list[str]], got: list[list[str]]) -> str:
    lines = []
    for index, (want, have) in enumerate(zip(expected, got, strict=True)):
        if want != have:
            lines.append(f"thread {index}:")
            lines.extend(difflib.unified_diff(want, have, "undisturbed", "disturbed", lineterm="", n=1))
    return "\n".join(line[:300] for line in lines)


def assert_as_undisturbed(
    outcome: Outcome, reference: Outcome, faults: Faults, label: str, replay: str
) -> None:
    """Every thread shows what the undisturbed run shows, Coder got each message once, no chat twice;
    prints the run's summary line (``label``: the scenario)."""
    in_place = not faults.kills
    same = comparable(outcome.threads, cards_in_place=in_place) == comparable(
        reference.threads, cards_in_place=in_place
    )
    result = "ok" if same else "DIFFERENT"
    print(f"\nfaults {label}: {outcome.tally.line()}; {result} ({replay})")
    assert outcome.user_texts == [[turn.text for turn in plan] for plan in PLANS], replay
    assert outcome.chats_per_thread == [1] * len(PLANS), replay
    assert outcome.chats == len(PLANS), replay
    assert outcome.queued_left == 0, replay
    reordered = [(sorted(texts), cards) for texts, cards in comparable(outcome.threads)] == [
        (sorted(texts), cards) for texts, cards in comparable(reference.threads)
    ]
    if not same and reordered and faults.kills:
        # Nothing lost or doubled, but a message re-posted after a kill landed out of place: a known
        # open gap (messages posted after a restart follow slot order, not always the thread's).
        pytest.xfail(f"known: order after a crash ({replay})\n{_diff(reference.threads, outcome.threads)}")
    assert same, f"{replay}\n{_diff(reference.threads, outcome.threads)}"
