"""Fault injection: the real bridge process survives crashes, retries, drops, 5xx and 429 storms.

Each scenario plays the scripted conversations (three threads at once, follow-ups queued and not)
against `bridge serve` while its faults strike, then checks that every thread ends exactly as in an
undisturbed run, that every follow-up reached Coder exactly once and that no chat was created twice.
The schedule comes from one seed per session, printed with each summary line; set
``BRIDGE_FAULT_SEED`` to replay a failure.
"""

from __future__ import annotations

import difflib
import random
from pathlib import Path

import pytest

from tests.faults.conversation import PLANS
from tests.faults.harness import SEED_ENV, Faults, Outcome, comparable, run_script, session_seed

SEED = session_seed()

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

_references: dict[tuple[str, str], Outcome] = {}


async def _reference(generation: str, style: str, workdir: Path) -> Outcome:
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
    reference = await _reference(generation, style, tmp_path)
    rng = random.Random(f"{SEED}:{scenario}")
    try:
        outcome = await run_script(
            tmp_path, database_url, generation, faults, rng, reference.threads, style=style
        )
    except TimeoutError as exc:
        pytest.fail(f"{scenario} never settled ({replay}): {exc}")
    in_place = not faults.kills
    same = comparable(outcome.threads, cards_in_place=in_place) == comparable(
        reference.threads, cards_in_place=in_place
    )
    result = "ok" if same else "DIFFERENT"
    where = f"{database_url.split(':')[0]}, {style}"
    print(f"\nfaults {scenario} [{where}]: {outcome.tally.line()}; {result} ({replay})")
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
