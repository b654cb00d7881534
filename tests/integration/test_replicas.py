"""Several `bridge serve` replicas on one PostgreSQL database behave as one bridge.

Each scenario plays the fault suite's scripted conversations (three threads at once, follow-ups
queued and not) against replicas behind a round-robin load balancer, so Slack's deliveries, and its
retries of an event whose ack it lost, land on any replica. Meanwhile one replica is killed with
SIGKILL mid-stream (its chats are taken over from the stored cursor), and every replica is
restarted in turn with SIGTERM (a rolling deploy). Every thread must end as in an undisturbed run of one
bridge: each reply, header and "done" notice exactly once, each follow-up received by Coder once,
one chat per thread. On SQLite a second replica is refused with one line; on PostgreSQL replicas
that start at once migrate the database one after the other.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from bridge.db.engine import Database
from bridge.db.migrate import alembic_config, upgrade
from bridge.sim.coder import CoderSim
from bridge.sim.coder_agent import Gate, Text
from bridge.sim.slack import SlackSim
from tests.conftest import postgres_database
from tests.faults.harness import SEED, SEED_ENV, Faults, assert_as_undisturbed, reference_run, run_script
from tests.integration.conftest import WAIT
from tests.integration.processes import BridgeProcess, serve_env


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A new PostgreSQL database for the test (skipped without ``BRIDGE_TEST_POSTGRES_URL``)."""
    async for url in postgres_database():
        yield url


SCENARIOS = {"spread-retried-one-killed-then-rolled": Faults(replicas=3, kills=1, rolling=True, ack_loss=0.3)}
"""Scenario -> faults, against Coder's promoted API (the generation makes no difference to how
replicas share the work). One run both kills a replica and restarts each in turn, as the suite must
stay short: the kill and the restarts overlap, which only makes the takeovers harder."""


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_replicas_end_as_one_undisturbed_bridge(
    tmp_path: Path, postgres_url: str, scenario: str
) -> None:
    """Deliveries spread and retried over the replicas, one of them killed and each restarted in
    turn: every thread shows what one undisturbed bridge shows, and Coder got each message once."""
    faults = SCENARIOS[scenario]
    replay = f"seed {SEED}; replay with {SEED_ENV}={SEED}"
    reference = await reference_run("v2", tmp_path)
    rng = random.Random(f"{SEED}:{scenario}")
    try:
        outcome = await run_script(tmp_path, postgres_url, "v2", faults, rng, reference.threads)
    except TimeoutError as exc:
        pytest.fail(f"{scenario} never settled ({replay}): {exc}")
    assert_as_undisturbed(outcome, reference, faults, f"{scenario} [postgresql]", replay)


async def test_a_second_replica_on_sqlite_is_refused_with_one_line(
    tmp_path: Path, sims: tuple[SlackSim, CoderSim]
) -> None:
    """SQLite serves one replica: a second `bridge serve` on the same file exits at once, saying why."""
    slack, coder = sims
    env = serve_env(slack, coder, tmp_path)
    first = await BridgeProcess.start(env, tmp_path)
    try:
        with pytest.raises(RuntimeError) as refused:
            await BridgeProcess.start(env, tmp_path)
        said = str(refused.value)
        assert "bridge exited with 1" in said
        assert "another bridge already serves the SQLite database" in said
        assert "use PostgreSQL" in said
        assert "Traceback" not in said
    finally:
        code, _ = await first.stop()
    assert code == 0
    again = await BridgeProcess.start(env, tmp_path)  # the first one let go: a restart is welcome
    await again.stop()


async def test_replicas_migrating_at_once_are_serialised(postgres_url: str) -> None:
    """Replicas starting together on a new PostgreSQL database all migrate it (one does the work, an
    advisory lock makes the others wait and find nothing to do), and none fails."""
    databases = [Database(postgres_url) for _ in range(4)]
    try:
        before = await asyncio.gather(*(upgrade(db) for db in databases))
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert (before.count(None), before.count(head)) == (1, 3)  # one migrated a new database
        async with databases[0].unit() as session:
            version = (await session.execute(text("SELECT version_num FROM alembic_version"))).scalar()
        assert version == head
    finally:
        for db in databases:
            await db.dispose()


async def test_the_watch_runs_once_and_its_renames_reach_the_other_replicas_threads_and_homes(
    tmp_path: Path, sims: tuple[SlackSim, CoderSim], postgres_url: str
) -> None:
    """The chat watch runs on one replica (the first to start holds its lease). A chat followed by
    the other replica is renamed in Coder while it works: the person's Home tab, opened on that other
    replica, shows the new title (published once), and so does the thread's header once the turn ends."""
    slack, coder = sims
    gate = asyncio.Event()
    coder.agent = lambda prompt: [Text("Working, "), Gate(gate), Text("done.")]
    env = serve_env(slack, coder, tmp_path, DATABASE_URL=postgres_url)
    watching = await BridgeProcess.start(env, tmp_path)
    other = await BridgeProcess.start(env, tmp_path)
    try:
        slack.event_url = other.events_url  # the other replica starts the chat, so follows it
        root = await slack.user_says(slack.alice, slack.general, f"<@{slack.bot_user_id}> tidy the docs")

        def texts() -> list[str]:
            return [m.visible_text for m in slack.thread(slack.general, root) if m.bot_id]

        await slack.wait_for(lambda: "Working, " in texts(), timeout=WAIT)
        watches = sum(1 for r in coder.requests if r.path.endswith("/chats/watch"))
        assert watches == 1, "one replica watches Coder's chat list"
        await slack.open_home(slack.alice)
        await slack.wait_for(lambda: "tidy the docs" in str(slack.home_view(slack.alice)), timeout=WAIT)
        published = len(slack.calls_to("views.publish"))
        chat = next(c for c in coder.chats.values() if c.labels.get("slack_thread") == root)
        coder.set_title(chat.id, "Docs tidied")
        await slack.wait_for(lambda: "Docs tidied" in str(slack.home_view(slack.alice)), timeout=WAIT)
        assert len(slack.calls_to("views.publish")) == published + 1
        gate.set()
        await slack.wait_for(lambda: "[Docs tidied]" in texts()[0] and "waiting" in texts()[0], timeout=WAIT)
    finally:
        await other.stop()
        await watching.stop()
