"""What ``/metrics`` tells an operator while a thread waits on Slack: the 429, the backlog, the lag."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bridge.relay.limits import METHOD_BUDGETS
from tests.integration.conftest import World

PAUSE = 2.0
"""Slack's ``Retry-After`` for the one 429 of the test: every text shown after it lagged this long."""


async def _scrape(world: World) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``, by name and labels."""
    assert world.bridge is not None
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{world.bridge.port}/metrics")).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_a_rate_limited_post_shows_in_backlog_lag_and_429s(world: World) -> None:
    """Slack answers the thread's first post 429 with ``Retry-After``: meanwhile the outbox reports
    a backlog and a thread waiting; afterwards the 429 is counted by method, the event's
    acknowledgement and every budgeted call were timed, the lag of the text held back by the pause is
    over the pause, and the budgets in force are exposed."""
    world.slack.fail_next("chat.postMessage", error="ratelimited", status=429, retry_after=PAUSE)
    root = await world.mention("fix it")
    await world.until(lambda: any(c.status == 429 for c in world.slack.calls_to("chat.postMessage")))
    held = await _scrape(world)
    assert _value(held, "bridge_outbox_pending") >= 1
    assert _value(held, "bridge_outbox_longest_wait_seconds") > 0

    await world.until_idle_and_shown(root)
    after = await _scrape(world)
    calls = "bridge_slack_calls_total"
    assert _value(after, calls, method="chat.postMessage", outcome="ratelimited") == 1
    events = sum(v for (name, _), v in after.items() if name == "bridge_slack_events_total")
    assert _value(after, "bridge_slack_event_ack_seconds_count") == events >= 1  # each timed once
    waited = "bridge_slack_budget_wait_seconds_count"
    assert _value(after, waited, team=world.slack.team_id, method="chat.postMessage") >= _value(
        after, calls, method="chat.postMessage", outcome="ok"
    )
    lag = "bridge_stream_lag_seconds"
    shown = _value(after, f"{lag}_count", kind="final")
    assert shown >= 1
    assert _value(after, f"{lag}_bucket", kind="final", le="1.0") < shown  # one waited out the pause
    budget = METHOD_BUDGETS["chat.postMessage"].per_minute * world.settings.slack_rate_scale
    per_minute = "bridge_slack_budget_per_minute"
    assert _value(after, per_minute, team=world.slack.team_id, method="chat.postMessage") == budget
