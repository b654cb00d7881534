"""The learned pace of an unpublished Slack budget, on a clock the test moves (no waiting)."""

from __future__ import annotations

import pytest

from bridge.relay.budgets import merge
from bridge.relay.pace import BACKOFF, FLOOR, HEADROOM, Learned, Pace


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def busy_second(pace: Pace, clock: Clock, calls: int) -> bool:
    """One Slack second in which ``calls`` callers each waited, then were let through; whether the
    pace rose."""
    rose = False
    for _ in range(calls):
        clock.now += 1.01 / calls  # a little over a second: one raise at most
        pace.held()
        rose = pace.granted() or rose
    return rose


def test_the_pace_doubles_each_second_it_holds_callers_back_up_to_its_maximum() -> None:
    clock = Clock()
    pace = Pace(300, maximum=2000, scale=1.0, clock=clock)
    paces = []
    for _ in range(4):
        busy_second(pace, clock, calls=10)
        paces.append(pace.per_minute)
    assert paces == [600, 1200, 2000, 2000]
    assert pace.dirty


def test_calls_the_budget_never_held_back_teach_nothing() -> None:
    clock = Clock()
    pace = Pace(300, maximum=3000, scale=1.0, clock=clock)
    for _ in range(50):
        clock.now += 0.1
        assert not pace.granted()
    assert pace.learned == Learned(300)
    assert not pace.dirty


def test_a_refusal_while_in_use_halves_the_pace_and_growth_stays_under_it() -> None:
    """Slack's 429 at the pace actually used (15 calls a second here) becomes the ceiling."""
    clock = Clock()
    pace = Pace(300, maximum=3000, scale=1.0, clock=clock)
    busy_second(pace, clock, calls=15)
    busy_second(pace, clock, calls=15)
    assert pace.refused(retry_after=1.0)
    ceiling = pace.learned.ceiling
    assert ceiling == pytest.approx(15 / 1.01 * 60, rel=0.1)
    assert pace.per_minute == pytest.approx(ceiling * BACKOFF)
    assert pace.refused_lately
    for _ in range(6):
        busy_second(pace, clock, calls=15)
    assert pace.per_minute == pytest.approx(ceiling * HEADROOM)


def test_refusals_of_calls_already_under_way_are_one_lesson() -> None:
    clock = Clock()
    pace = Pace(600, maximum=3000, scale=1.0, clock=clock)
    busy_second(pace, clock, calls=10)
    assert pace.refused(retry_after=2.0)
    after_first = pace.learned
    clock.now += 1.0
    pace.held()
    assert not pace.refused(retry_after=2.0)
    assert pace.learned == after_first


def test_a_refusal_when_the_budget_held_nobody_back_is_not_about_it() -> None:
    """A 429 on one channel's limit, or another app's, while the pace was far from used up."""
    clock = Clock()
    pace = Pace(300, maximum=3000, scale=1.0, clock=clock)
    clock.now += 5
    pace.granted()
    assert not pace.refused(retry_after=1.0)
    assert pace.learned == Learned(300)


def test_the_pace_never_falls_under_the_floor() -> None:
    clock = Clock()
    pace = Pace(80, maximum=3000, scale=1.0, clock=clock)
    for _ in range(5):
        busy_second(pace, clock, calls=1)
        pace.refused(retry_after=0.1)
        clock.now += 1
    assert pace.per_minute == FLOOR


def test_slack_seconds_follow_the_rate_scale() -> None:
    """With a time-scaled Slack (scale 20: a Slack second is 50 ms), growth is 20 times faster."""
    clock = Clock()
    pace = Pace(300, maximum=3000, scale=20.0, clock=clock)
    for _ in range(10):
        clock.now += 0.01
        pace.held()
        pace.granted()
    assert pace.per_minute == 1200


def test_what_the_database_holds_is_taken_within_the_maximum() -> None:
    clock = Clock()
    pace = Pace(300, maximum=1000, scale=1.0, clock=clock)
    pace.adopt(Learned(5000, 6000))
    assert pace.learned == Learned(1000, 6000)
    assert not pace.dirty


def test_merge_a_refusal_lowers_the_stored_pace_and_ceiling() -> None:
    assert merge(Learned(1200), Learned(400, 800), refused=True) == Learned(400, 800)
    assert merge(Learned(300, 500), Learned(400, 800), refused=True) == Learned(300, 500)


def test_merge_another_replicas_refusal_wins_over_this_ones_growth() -> None:
    assert merge(Learned(250, 500), Learned(2400), refused=False) == Learned(250, 500)


def test_merge_growth_keeps_the_faster_pace_under_the_ceiling() -> None:
    assert merge(Learned(600), Learned(1200), refused=False) == Learned(1200)
    assert merge(Learned(600, 1000), Learned(1200, 1000), refused=False) == Learned(900, 1000)
    assert merge(None, Learned(600), refused=False) == Learned(600)
