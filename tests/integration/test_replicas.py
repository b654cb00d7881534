"""Several `bridge serve` replicas on one PostgreSQL database behave as one bridge.

Each scenario plays the fault suite's scripted conversations (three threads at once, follow-ups
queued and not) against replicas behind a round-robin load balancer, so Slack's deliveries, and its
retries of an event whose ack it lost, land on any replica. Meanwhile one replica is killed with
SIGKILL mid-stream (its chats are taken over from the stored cursor), or every replica is restarted
in turn with SIGTERM (a rolling deploy). Every thread must end as in an undisturbed run of one
bridge: each reply, header and "done" notice exactly once, each follow-up received by Coder once,
one chat per thread. On SQLite a second replica is refused with one line; on PostgreSQL replicas
that start at once migrate the database one after the other.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from bridge.db.engine import Database
from bridge.db.migrate import alembic_config, upgrade
from bridge.sim.coder import CoderSim
from bridge.sim.slack import SlackSim
from tests.conftest import postgres_database
from tests.faults.harness import SEED, SEED_ENV, Faults, assert_as_undisturbed, reference_run, run_script
from tests.integration.processes import BridgeProcess, serve_env

SCENARIOS = {
    "spread-retried-one-killed": Faults(replicas=3, kills=1, ack_loss=0.3),
    "rolling-restart": Faults(replicas=2, rolling=True, ack_loss=0.3),
}
"""Scenario -> faults, each against Coder's promoted API (the generation makes no difference to
how replicas share the work)."""


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_replicas_end_as_one_undisturbed_bridge(tmp_path: Path, scenario: str) -> None:
    """Deliveries spread and retried over the replicas, one of them killed or each restarted in turn:
    every thread shows what one undisturbed bridge shows, and Coder got each message once."""
    async for database_url in postgres_database():
        faults = SCENARIOS[scenario]
        replay = f"seed {SEED}; replay with {SEED_ENV}={SEED}"
        reference = await reference_run("v2", tmp_path)
        rng = random.Random(f"{SEED}:{scenario}")
        try:
            outcome = await run_script(tmp_path, database_url, "v2", faults, rng, reference.threads)
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


async def test_replicas_migrating_at_once_are_serialised() -> None:
    """Replicas starting together on a new PostgreSQL database all migrate it (one does the work, an
    advisory lock makes the others wait and find nothing to do), and none fails."""
    async for database_url in postgres_database():
        databases = [Database(database_url) for _ in range(4)]
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
