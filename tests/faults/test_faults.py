"""Fault injection: the real bridge process survives crashes, retries, drops, 5xx and 429 storms.

Each scenario plays the scripted conversations (three threads at once, follow-ups queued and not)
against `bridge serve` while its faults strike, then checks that every thread ends exactly as in an
undisturbed run, that every follow-up reached Coder exactly once and that no chat was created twice.
The schedule comes from one seed per session, printed with each summary line; set
``BRIDGE_FAULT_SEED`` to replay a failure.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.faults.harness import (
    SEED,
    SEED_ENV,
    Faults,
    assert_as_undisturbed,
    reference_run,
    run_script,
)

SCENARIOS = {
    "crashes": ("experimental", Faults(kills=3, ack_loss=0.3, coder_slow=0.2)),
    "retries-drops-5xx-429s": (
        "v2",
        Faults(
            ack_loss=1.0,
            drop_every=(0.8, 2.0),
            coder_errors=0.15,
            coder_slow=0.15,
            storm=0.3,
            slack_retry_delays=(0.0, 10.0, 20.0),
        ),
    ),
    "socket-mode": ("v2", Faults(kills=2, ack_loss=0.3, drop_every=(1.0, 2.5), storm=0.2, socket_mode=True)),
    "newest-coder": (
        "v2-late",
        Faults(kills=2, ack_loss=0.3, drop_every=(1.0, 2.5), coder_errors=0.1, coder_slow=0.1, storm=0.2),
    ),
}
"""Scenario -> (Coder generation, faults). Every event is retried only where nothing is killed, so
the retries (0.5 s and 1 s apart) need not outlast a restart."""

ON_POSTGRES = ("crashes",)
"""The scenarios that also run on PostgreSQL: crashes are where the database's behaviour matters."""

STYLES = ("compact", "full")
"""Both thread styles keep every guarantee: each scenario runs in each."""


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_threads_end_as_in_an_undisturbed_run(
    tmp_path: Path, database_url: str, scenario: str, style: str
) -> None:
    """Under faults every thread shows what an undisturbed run shows; Coder got each message once."""
    generation, faults = SCENARIOS[scenario]
    if not database_url.startswith("sqlite") and scenario not in ON_POSTGRES:
        pytest.skip(f"on PostgreSQL only {', '.join(ON_POSTGRES)} runs, to keep the suite short")
    replay = f"seed {SEED}; replay with {SEED_ENV}={SEED}"
    reference = await reference_run(generation, tmp_path, style)
    rng = random.Random(f"{SEED}:{scenario}")
    try:
        outcome = await run_script(
            tmp_path, database_url, generation, faults, rng, reference.threads, style=style
        )
    except TimeoutError as exc:
        pytest.fail(f"{scenario} never settled ({replay}): {exc}")
    where = f"{scenario} [{database_url.split(':')[0]}, {style}]"
    assert_as_undisturbed(outcome, reference, faults, where, replay)
