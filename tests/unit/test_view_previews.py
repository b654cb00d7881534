"""ThreadView against the newest Coder's stream: preview resets, numbered deltas, revisions, rewrites."""

from __future__ import annotations

from bridge.coder.types import (
    ChatPhase,
    ChatStatus,
    ConnectedEvent,
    HistoryResetEvent,
    Part,
    PartEvent,
    PreviewResetEvent,
    RetryEvent,
    StatusEvent,
    StreamEvent,
)
from bridge.relay.slots import SlotKey
from bridge.relay.view import ThreadView, removed_by
from bridge.slack.blocks import RESTARTING
from tests.unit.test_view import RUNNING, WAITING, message, shown
from tests.unit.view_shown import changed, renamed

RESET = PreviewResetEvent()


def part(text: str, seq: int, *, history: int = 1, attempt: int = 1, kind: str = "text") -> PartEvent:
    """A delta as the newest Coder numbers it."""
    return PartEvent(
        role="assistant",
        part=Part(type=kind, text=text),
        history_version=history,
        generation_attempt=attempt,
        seq=seq,
    )


def running_turn() -> list[StreamEvent]:
    """A turn that has just started on the newest Coder: its user message, then the attempt's reset."""
    return [message(5, "user", "fix it"), RESET, RUNNING, RESET]


def test_a_retried_model_call_shows_only_the_new_attempt() -> None:
    """A retry voids the streamed attempt: the draft shows a placeholder, then the new attempt's text
    alone, always in the same block."""
    view = ThreadView()
    view.apply([*running_turn(), part("I'll start by rewriting ", 1), part("the auth mod", 2)])
    assert shown(view) == [("draft", "I'll start by rewriting the auth mod", False)]
    view.apply([RetryEvent(attempt=1, delay_ms=1000, error="overloaded"), RESET])
    assert ("draft", RESTARTING, False) in shown(view)
    view.apply([part("Rewriting ", 1, attempt=2), part("the auth module.", 2, attempt=2)])
    assert ("draft", "Rewriting the auth module.", False) in shown(view)
    view.apply([message(6, "assistant", "Rewriting the auth module.")])
    assert ("after:5", "Rewriting the auth module.", True) in shown(view)
    assert renamed(view) == [("draft", "after:5")]


def test_the_void_attempt_is_gone_while_coder_waits_to_retry() -> None:
    """The retry event itself voids the attempt streamed so far: through the backoff before the
    reset, the draft shows the placeholder, and a late delta of the void attempt is dropped."""
    view = ThreadView()
    view.apply([*running_turn(), part("I'll start by rewriting ", 1), part("the auth mod", 2)])
    view.apply([RetryEvent(attempt=1, delay_ms=30000, error="overloaded")])
    assert ("draft", RESTARTING, False) in shown(view)
    view.apply([part("ule", 3)])
    assert ("draft", RESTARTING, False) in shown(view)
    view.apply([RESET, part("Rewriting.", 1, attempt=2)])
    assert ("draft", "Rewriting.", False) in shown(view)


def test_a_newer_attempt_replaces_the_draft_without_its_reset() -> None:
    """Deltas of a newer generation attempt replace what the older one streamed, reset or not."""
    view = ThreadView()
    view.apply([*running_turn(), part("First try", 1)])
    view.apply([part("Second", 1, attempt=2)])
    assert shown(view) == [("draft", "Second", False)]


def test_stale_and_repeated_deltas_are_dropped() -> None:
    """A delta already seen (same preview, same or lower seq) or from an older preview is not shown."""
    view = ThreadView()
    view.apply([*running_turn(), part("Hel", 1), part("lo", 2), part("lo", 2), part("Hel", 1)])
    assert shown(view) == [("draft", "Hello", False)]
    view.apply([RESET, part("Hi", 1, attempt=2), part("late", 3), part("Hel", 1)])
    assert shown(view) == [("draft", "Hi", False)]


def test_unnumbered_deltas_of_older_coder_are_all_kept() -> None:
    """Older Coder numbers no deltas: each is appended, repeats and all."""
    view = ThreadView()
    view.apply([message(5, "user", "go"), RUNNING, part("a", 0), part("a", 0)])
    assert shown(view) == [("draft", "aa", False)]


def test_a_reconnect_mid_turn_keeps_streaming_the_current_step() -> None:
    """After a reconnect the newest Coder replays only the current step's deltas, after the snapshot's
    reset: the draft goes on from the persisted steps, neither frozen nor doubled."""
    view = ThreadView()
    view.apply([*running_turn(), part("Looking.", 1)])
    view.apply([message(6, "assistant", "Looking."), RESET, part("Fixed ", 1, history=2)])
    view.apply([ConnectedEvent(after_id=6)])
    view.apply([RUNNING, RESET])
    view.apply([part("Fixed ", 1, history=2), part("it.", 2, history=2)])
    assert shown(view) == [("after:5", "Looking.", True), ("draft", "Fixed it.", False)]


def test_a_turn_that_waited_streams_on_after_the_wait() -> None:
    """The agent waited for its person mid-turn; once it runs again its new deltas show at once."""
    waiting = StatusEvent(status=ChatStatus(phase=ChatPhase.NEEDS_USER, name="requires_action"))
    view = ThreadView()
    view.apply([*running_turn(), part("One question.", 1)])
    view.apply([message(6, "assistant", "One question.", tool=True), RESET, waiting])
    view.apply([message(7, "tool"), RESET, RUNNING, part("Thanks.", 1, history=3)])
    assert shown(view) == [("after:5", "One question.", True), ("draft", "Thanks.", False)]


def test_a_turn_begun_while_away_streams_after_its_snapshot() -> None:
    """A turn that began while the bridge was away: the snapshot's messages lead up to it, its
    current step's deltas follow the closing reset and land on its own draft."""
    view = ThreadView(after_id=5, newer_turn=7)
    view.apply([ConnectedEvent(after_id=5)])
    view.apply([message(6, "assistant", "Done."), message(7, "user", "more"), RUNNING, RESET])
    view.apply([part("Sure", 1, history=3)])
    assert shown(view) == [("after:5", "Done.", True), ("draft", "Sure", False)]


def test_snapshot_deltas_after_its_reset_stay_after_it() -> None:
    """Deltas in the snapshot's own batch, after its closing reset, are not moved before it."""
    view = ThreadView()
    view.apply([ConnectedEvent()])
    view.apply([message(5, "user", "go"), RUNNING, RESET, part("Hi", 1)])
    assert shown(view) == [("draft", "Hi", False)]


def test_a_revision_replaces_the_reply_and_the_draft_goes_on() -> None:
    """A message sent again under its id replaces the reply it shows, never adds to it."""
    view = ThreadView()
    view.apply([*running_turn(), part("Looking.", 1)])
    view.apply([message(6, "assistant", "Looking."), RESET])
    view.apply(
        [message(6, "assistant", "Looked."), RESET, part("Now ", 1, history=3), part("this.", 2, history=3)]
    )
    assert shown(view) == [("after:5", "Looked.", True), ("draft", "Now this.", False)]


def test_a_history_rewrite_keeps_what_survived_and_drops_the_rest() -> None:
    """After a history reset the whole history comes again: what Slack shows is not shown again, the
    removed turn's reply and draft leave the view, and the surviving ids are reported."""
    view = ThreadView()
    view.apply([*running_turn(), part("Done.", 1)])
    view.apply([message(6, "assistant", "Done."), RESET, WAITING])
    view.apply([message(7, "user", "secnd"), RESET, RUNNING, RESET, part("Half", 1, history=4)])
    history: list[StreamEvent] = [
        HistoryResetEvent(),
        message(5, "user", "fix it"),
        message(6, "assistant", "Done."),
        message(9, "user", "second"),
        RESET,
    ]
    view.apply(history)
    assert view.rewritten == frozenset({5, 6, 9})
    assert renamed(view) == [("draft", "partial:7")]
    assert changed(view) == []
    assert shown(view) == [("after:5", "Done.", True)]
    view.apply([part("Echo", 1, history=6, attempt=2)])
    assert shown(view) == [("after:5", "Done.", True), ("draft", "Echo", False)]
    view.apply([message(10, "assistant", "Echo: second")])
    assert ("after:9", "Echo: second", True) in shown(view)


def test_a_history_rewrite_spread_over_batches_waits_for_its_end() -> None:
    """The history may come in several batches: nothing is decided before the reset that ends it."""
    view = ThreadView()
    view.apply([*running_turn(), part("Done.", 1)])
    view.apply([message(6, "assistant", "Done."), RESET, WAITING])
    view.apply([HistoryResetEvent(), message(5, "user", "fix it")])
    assert view.rewritten is None
    view.apply([message(6, "assistant", "Done."), RESET])
    assert view.rewritten == frozenset({5, 6})
    assert changed(view) == []


def test_history_from_before_the_view_is_not_shown_again() -> None:
    """A replay of the whole history on a view started later (a restart) shows none of the old replies."""
    view = ThreadView(after_id=20)
    view.apply([ConnectedEvent(after_id=20)])
    view.apply([HistoryResetEvent(), message(3, "user", "old"), message(4, "assistant", "Old reply."), RESET])
    assert view.rewritten == frozenset({3, 4})
    assert shown(view) == []
    assert view.last_id == 4


def test_removed_by_names_the_slots_anchored_to_removed_messages() -> None:
    """Replies, partial drafts and cards (split parts too) go with the message they are anchored to."""
    surviving = frozenset({5, 6})
    assert [
        k
        for k in ("after:6", "after:7", "after:7#1", "partial:8", "card:7", "card:5")
        if removed_by(SlotKey.decode(k), surviving)
    ] == [
        "after:7",
        "after:7#1",
        "partial:8",
        "card:7",
    ]
    assert not any(
        removed_by(SlotKey.decode(k), surviving)
        for k in ("after:0", "header", "draft", "error:7", "outcome:7")
    )
