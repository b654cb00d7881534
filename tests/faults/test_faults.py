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
from collections import Counter
from pathlib import Path

import pytest

from bridge.slack.blocks import is_card, is_outcome
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
}
"""Scenario -> (Coder generation, faults). Every event is retried only where nothing is killed, so
the retries (0.5 s and 1 s apart) need not outlast a restart."""

ON_POSTGRES = ("crashes",)
"""The scenarios that also run on PostgreSQL: crashes are where the database's behaviour matters."""

_references: dict[str, Outcome] = {}


async def _reference(generation: str, workdir: Path) -> Outcome:
    """The undisturbed run of the script for a Coder generation (played once per session)."""
    if generation not in _references:
        _references[generation] = await run_script(
            workdir, f"sqlite:///{workdir}/reference.db", generation, Faults(), random.Random(0)
        )
    return _references[generation]


def _outbox_losses(expected: list[list[str]], got: list[list[str]]) -> list[str]:
    """The differences a crash makes while Slack output lives in memory only, or [] if there are others.

    Such a crash loses what was set just before it and not yet sent: a notice (an outcome mention, a
    "queued" line) or a card's last edit (it stays "⏳ Working"); and it can post a message again
    whose ``ts`` Slack returned but the bridge had not stored yet, leaving the first copy in an
    earlier state (a header still "running"). The durable outbox (branch ``durable``) removes all of
    these; until it is merged those runs are expected failures.
    """
    found: list[str] = []
    for want, have in zip(expected, got, strict=True):
        lost = Counter(want) - Counter(have)
        again = Counter(have) - Counter(want)
        if any(not (is_outcome(t) or t.startswith("📥") or is_card(t)) for t in lost):
            return []
        if any(t not in want and not _stale_state(t) for t in again):
            return []
        if not _aligned(want, have, lost, again):
            return []
        found += [f"lost {t[:30]!r}" for t in lost.elements()]
        found += [f"extra {t[:30]!r}" for t in again.elements()]
    return found


def _stale_state(text: str) -> bool:
    """A message left in an earlier state: a card still working, or the header before it went idle."""
    return text.startswith("⏳") or text.startswith("Started a Coder chat")


def _aligned(want: list[str], have: list[str], lost: Counter[str], again: Counter[str]) -> bool:
    """Whether ``have`` is ``want`` in order once the lost texts are dropped from one and the extra
    ones from the other (cards left out: their place varies anyway)."""
    want = [t for t in want if not is_card(t)]
    have = [t for t in have if not is_card(t)]
    lost, again = lost.copy(), again.copy()
    i = j = 0
    while i < len(want) or j < len(have):
        if i < len(want) and j < len(have) and want[i] == have[j]:
            i, j = i + 1, j + 1
        elif i < len(want) and lost[want[i]] > 0:
            lost[want[i]] -= 1
            i += 1
        elif j < len(have) and again[have[j]] > 0:
            again[have[j]] -= 1
            j += 1
        else:
            return False
    return True


def _diff(expected: list[list[str]], got: list[list[str]]) -> str:
    lines = []
    for index, (want, have) in enumerate(zip(expected, got, strict=True)):
        if want != have:
            lines.append(f"thread {index}:")
            lines.extend(difflib.unified_diff(want, have, "undisturbed", "disturbed", lineterm="", n=1))
    return "\n".join(line[:300] for line in lines)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_threads_end_as_in_an_undisturbed_run(tmp_path: Path, database_url: str, scenario: str) -> None:
    """Under faults every thread shows what an undisturbed run shows; Coder got each message once."""
    generation, faults = SCENARIOS[scenario]
    if not database_url.startswith("sqlite") and scenario not in ON_POSTGRES:
        pytest.skip(f"on PostgreSQL only {', '.join(ON_POSTGRES)} runs, to keep the suite short")
    replay = f"seed {SEED}; replay with {SEED_ENV}={SEED}"
    reference = await _reference(generation, tmp_path)
    rng = random.Random(f"{SEED}:{scenario}")
    try:
        outcome = await run_script(tmp_path, database_url, generation, faults, rng, reference.threads)
    except TimeoutError as exc:
        pytest.fail(f"{scenario} never settled ({replay}): {exc}")
    same = comparable(outcome.threads) == comparable(reference.threads)
    result = "ok" if same else "DIFFERENT"
    print(f"\nfaults {scenario} [{database_url.split(':')[0]}]: {outcome.tally.line()}; {result} ({replay})")
    assert outcome.user_texts == [[turn.text for turn in plan] for plan in PLANS], replay
    assert outcome.chats_per_thread == [1] * len(PLANS), replay
    assert outcome.chats == len(PLANS), replay
    assert outcome.queued_left == 0, replay
    if not same and faults.kills and (losses := _outbox_losses(reference.threads, outcome.threads)):
        pytest.xfail(f"needs durable outbox (branch durable): {'; '.join(losses)} ({replay})")
    assert same, f"{replay}\n{_diff(reference.threads, outcome.threads)}"
