"""ThreadView: stream events folded into stable thread blocks."""

from __future__ import annotations

from bridge.coder.types import (
    ActionRequiredEvent,
    ChatPhase,
    ChatStatus,
    ClientCall,
    ConnectedEvent,
    ErrorEvent,
    Message,
    MessageEvent,
    Part,
    PartEvent,
    RetryEvent,
    StatusEvent,
    StreamEvent,
)
from bridge.relay.content import Card, Failed, Reply, ToolLine
from bridge.relay.slots import SlotKey
from bridge.relay.view import ThreadView
from tests.unit.view_shown import block, changed, plan_of, renamed, text

RUNNING = StatusEvent(status=ChatStatus(phase=ChatPhase.WORKING, name="running"))
WAITING = StatusEvent(status=ChatStatus(phase=ChatPhase.IDLE, name="waiting"))


def delta(text: str) -> PartEvent:
    return PartEvent(role="assistant", part=Part(type="text", text=text))


def message(id_: int, role: str, text: str = "", *, tool: bool = False) -> MessageEvent:
    parts = [Part(type="text", text=text)] if text else []
    if tool:
        parts.append(Part(type="tool-call", tool_name="execute"))
    return MessageEvent(message=Message(id=id_, role=role, content=tuple(parts)))


def shown(view: ThreadView) -> list[tuple[str, str, bool]]:
    """The reply blocks (the turn's status card has tests of its own)."""
    return [(b.key.encode(), text(b), b.final) for b in view.blocks if not b.key.encode().startswith("card:")]


def card(view: ThreadView) -> str:
    cards = [text(b) for b in view.blocks if b.key.encode().startswith("card:")]
    assert len(cards) == 1
    return cards[0]


def live_turn() -> list[StreamEvent]:
    return [
        ConnectedEvent(),
        message(5, "user", "fix it"),
        RUNNING,
        delta("Look"),
        delta("ing."),
        message(6, "assistant", "Looking.", tool=True),
        message(7, "tool"),
        delta("Fixed "),
        delta("it."),
        message(8, "assistant", "Fixed it."),
        WAITING,
    ]


def test_persisted_message_takes_over_the_draft() -> None:
    """A streamed reply is the draft; its persisted message renames the draft, so one Slack message."""
    view = ThreadView()
    view.apply([ConnectedEvent(), message(5, "user", "fix it"), RUNNING, delta("Look"), delta("ing.")])
    assert shown(view) == [("draft", "Looking.", False)]
    view.apply([message(6, "assistant", "Looking.", tool=True)])
    assert renamed(view) == [("draft", "after:5")]
    assert shown(view) == [("after:5", "Looking.", True)]
    assert changed(view) == ["after:5", "card:5"]


def test_each_assistant_message_gets_its_own_block() -> None:
    """Two steps of a turn (split by a tool call) become two blocks, in order, with exact texts."""
    view = ThreadView()
    for event in live_turn():
        view.apply([event])
    assert shown(view) == [("after:5", "Looking.", True), ("after:7", "Fixed it.", True)]
    assert view.last_id == 8
    assert not view.busy


def test_whole_turn_in_one_batch_equals_event_by_event() -> None:
    """Batching does not change the end state."""
    one = ThreadView()
    one.apply(live_turn())
    many = ThreadView()
    for event in live_turn():
        many.apply([event])
    assert shown(one) == shown(many)


def test_reconnect_snapshot_does_not_double_text() -> None:
    """After a reconnect Coder re-sends the turn's deltas; the draft still shows each text once."""
    view = ThreadView()
    view.apply(live_turn()[:8])  # up to "Fixed " of the second step
    view.apply(
        [ConnectedEvent(after_id=7), RUNNING, delta("Look"), delta("ing."), delta("Fixed "), delta("it")]
    )
    assert shown(view) == [("after:5", "Looking.", True), ("draft", "Fixed it", False)]


def test_restart_mid_turn_resumes_from_cursor() -> None:
    """A fresh view seeded with the cursor and the turn's persisted texts rebuilds the draft."""
    view = ThreadView(
        after_id=7,
        turn=[message(5, "user", "fix it").message, message(6, "assistant", "Looking.", tool=True).message],
        draft_shown=True,
    )
    view.apply([ConnectedEvent(after_id=7), RUNNING, delta("Looking."), delta("Fixed it.")])
    assert shown(view) == [("after:5", "Looking.", True), ("draft", "Fixed it.", False)]
    view.apply([message(8, "assistant", "Fixed it."), WAITING])
    assert renamed(view) == [("draft", "after:7")]
    assert shown(view) == [("after:5", "Looking.", True), ("after:7", "Fixed it.", True)]


def test_snapshot_after_missed_turn_end() -> None:
    """When the turn ended while disconnected, the snapshot's messages complete the blocks."""
    view = ThreadView()
    view.apply(live_turn()[:4])
    view.apply(
        [
            ConnectedEvent(after_id=5),
            WAITING,
            message(6, "assistant", "Looking.", tool=True),
            message(7, "tool"),
            message(8, "assistant", "Fixed it."),
        ]
    )
    assert shown(view) == [("after:5", "Looking.", True), ("after:7", "Fixed it.", True)]


def test_full_refresh_replay_changes_nothing() -> None:
    """Coder re-sending messages already seen (full refresh) yields no changed blocks."""
    view = ThreadView()
    view.apply(live_turn())
    view.apply(
        [
            message(5, "user", "fix it"),
            message(6, "assistant", "Looking.", tool=True),
            message(7, "tool"),
            message(8, "assistant", "Fixed it."),
        ]
    )
    assert changed(view) == []


def test_interrupted_draft_is_kept_when_finished() -> None:
    """A reply cut off by an interrupt keeps its partial text under its own key when the chat is done."""
    view = ThreadView()
    view.apply([message(5, "user", "go"), RUNNING, delta("Half")])
    view.apply([WAITING])
    view.finish()
    assert renamed(view) == [("draft", "partial:5")]
    assert shown(view) == [("partial:5", "Half", True)]


def test_snapshot_deltas_before_messages_make_no_orphan() -> None:
    """In a snapshot the turn's deltas precede the messages; one event per batch still yields one reply."""
    view = ThreadView()
    events: list[StreamEvent] = [
        ConnectedEvent(),
        RUNNING,
        delta("Hello "),
        message(3, "user", "hi"),
        delta("there."),
        message(4, "assistant", "Hello there."),
        WAITING,
    ]
    for event in events:
        view.apply([event])
    view.finish()
    assert shown(view) == [("after:3", "Hello there.", True)]


def test_draft_from_before_a_restart_is_taken_over() -> None:
    """After a restart the stored draft message is adopted by the reply persisted while we were away."""
    view = ThreadView(after_id=5, draft_shown=True)
    view.apply([ConnectedEvent(after_id=5), WAITING])
    view.apply([message(6, "assistant", "All done.")])
    assert renamed(view) == [("draft", "after:5")]
    assert shown(view) == [("after:5", "All done.", True)]


def test_draft_from_before_a_restart_survives_a_cursor_behind_its_turn() -> None:
    """The cursor stored before a crash can precede the user message that began the shown draft's
    turn: that message, replayed after the restart, does not retire the draft; the reply takes it over."""
    view = ThreadView(after_id=4, draft_shown=True)
    view.apply([ConnectedEvent(after_id=4), WAITING, message(5, "user", "go")])
    view.apply([message(6, "assistant", "Half, and the rest.")])
    assert renamed(view) == [("draft", "after:5")]
    assert shown(view) == [("after:5", "Half, and the rest.", True)]


def test_a_draft_left_by_a_broken_turn_is_kept_when_the_next_turn_starts() -> None:
    """A broken-off reply leaves its draft; the next turn's user message retires it, never takes it over."""
    failed = StatusEvent(status=ChatStatus(phase=ChatPhase.ERROR, name="error"))
    view = ThreadView()
    view.apply([message(5, "user", "go"), RUNNING, delta("Started, ")])
    view.apply([ErrorEvent(message="broke off"), failed])
    view.apply([message(6, "user", "still there?"), RUNNING, delta("Echo")])
    assert renamed(view) == [("draft", "partial:5")]
    assert ("partial:5", "Started, ", True) in shown(view)
    assert ("draft", "Echo", False) in shown(view)


def test_errors_become_their_own_block() -> None:
    """An error event is shown once, keyed by where it happened."""
    view = ThreadView()
    view.apply([message(5, "user", "go"), RUNNING, ErrorEvent(message="model overloaded")])
    view.apply([ErrorEvent(message="model overloaded")])
    assert shown(view) == [("error:5", "⚠️ model overloaded", True)]


def test_next_turn_does_not_inherit_old_deltas() -> None:
    """A follow-up persisted right after a turn ended does not bring the old turn's text back."""
    view = ThreadView()
    view.apply(live_turn())
    view.apply([message(9, "user", "more")])
    view.finish()
    assert shown(view) == [("after:5", "Looking.", True), ("after:7", "Fixed it.", True)]


def tool_call(call_id: str, name: str, args: object) -> PartEvent:
    return PartEvent(
        role="assistant", part=Part(type="tool-call", tool_call_id=call_id, tool_name=name, args=args)
    )


def tool_result(call_id: str, *, error: bool = False) -> PartEvent:
    return PartEvent(role="tool", part=Part(type="tool-result", tool_call_id=call_id, is_error=error))


def test_one_card_per_turn_with_the_last_calls() -> None:
    """Many tool calls make one card that lists the last few, collapsing the rest, never a message each."""
    view = ThreadView()
    view.apply([message(5, "user", "go"), RUNNING])
    for n in range(8):
        view.apply([tool_call(f"c{n}", "execute", {"command": f"step {n}"}), tool_result(f"c{n}")])
    view.apply([tool_call("c8", "edit_files", {"files": [{"path": "src/auth.py"}]})])
    text = card(view)
    assert text.startswith("⏳ Working · 9 tools · touched `auth.py`")
    assert "…4 earlier" in text
    assert "- ✓ execute `step 7`" in text
    assert text.endswith("- ⏳ edit_files `src/auth.py`")
    assert [b.key.encode() for b in view.blocks] == ["card:5"]


def test_card_comes_with_its_plan() -> None:
    """The card's plan has every call (not only the last few) by its id, the state in words, and the
    card's first line; a call left without a result when the turn ended is unknown."""
    view = ThreadView()
    view.apply([message(5, "user", "go"), RUNNING])
    for n in range(6):
        view.apply(
            [tool_call(f"c{n}", "execute", {"command": f"step {n}"}), tool_result(f"c{n}", error=n == 2)]
        )
    view.apply([tool_call("c6", "read_file", {"path": "src/a.py"})])
    plan = plan_of(view, "card:5")
    assert plan is not None
    assert (plan.title, plan.head, plan.final) == ("Working", "⏳ Working · 7 tools · touched `a.py`", False)
    assert [(s.id, s.summary, s.state) for s in plan.steps][1:4] == [
        ("c1", "step 1", "ok"),
        ("c2", "step 2", "error"),
        ("c3", "step 3", "ok"),
    ]
    assert (plan.steps[-1].name, plan.steps[-1].state) == ("read_file", "running")
    view.apply([WAITING])
    plan = plan_of(view, "card:5")
    assert plan is not None
    assert (plan.title, plan.head, plan.final) == ("Done", "✅ Done · 7 tools · touched `a.py`", True)
    assert plan.steps[-1].state == "unknown"
    assert card(view).startswith(plan.head)


def test_card_ends_done_or_failed() -> None:
    """At the end of the turn the card says how it ended, and it then stays as it is."""
    view = ThreadView()
    view.apply([message(5, "user", "go"), RUNNING, tool_call("c1", "execute", {"command": "make"})])
    view.apply(
        [
            tool_result("c1", error=True),
            ErrorEvent(message="model overloaded"),
            StatusEvent(status=ChatStatus(phase=ChatPhase.ERROR, name="error")),
        ]
    )
    assert card(view).startswith("❌ Failed · 1 tool · model overloaded")
    assert block(view, "card:5").final
    view.apply([ConnectedEvent(), RUNNING, tool_call("c9", "execute", {"command": "next turn"})])
    assert "next turn" not in card(view), "a finished card is never rewritten"


def _cards(view: ThreadView) -> dict[str, tuple[str, bool]]:
    return {b.key.encode(): (text(b), b.final) for b in view.blocks if b.key.encode().startswith("card:")}


def _tool_message(id_: int, call_id: str, name: str, args: object) -> MessageEvent:
    part = Part(type="tool-call", tool_call_id=call_id, tool_name=name, args=args)
    return MessageEvent(message=Message(id=id_, role="assistant", content=(part,)))


def test_snapshot_after_a_reconnect_puts_a_newer_turns_deltas_on_its_own_card() -> None:
    """While the socket was down the turn called one more tool and ended, and Coder went on to the next
    turn. The reconnect's snapshot sends that turn's deltas before the messages that lead up to it;
    still the older card ends with its own two tools and the newer turn's call is on a card of its own,
    whether the snapshot comes in the connect's batch or the next."""
    for together in (True, False):
        view = ThreadView()
        view.apply([ConnectedEvent(), message(5, "user", "first"), RUNNING])
        view.apply([_tool_message(6, "a", "read_file", {"path": "a.py"}), message(7, "tool")])
        snapshot: list[StreamEvent] = [
            RUNNING,
            tool_call("c", "grep", {"pattern": "login"}),
            delta("Searching "),
            _tool_message(8, "b", "execute", {"command": "make"}),
            message(9, "tool"),
            message(10, "assistant", "did the first"),
            message(11, "user", "second"),
        ]
        if together:
            view.apply([ConnectedEvent(after_id=7), *snapshot])
        else:
            view.apply([ConnectedEvent(after_id=7)])
            view.apply(snapshot)
        first, first_final = _cards(view)["card:5"]
        assert first_final
        assert first.startswith("✅ Done · 2 tools")
        assert "grep" not in first
        second, second_final = _cards(view)["card:11"]
        assert not second_final
        assert "grep" in second
        assert ("draft", "Searching ", False) in shown(view)
        view.apply([delta("more")])  # a live batch after the snapshot keeps its order
        assert ("draft", "Searching more", False) in shown(view)


def test_a_turn_in_one_batch_places_its_card_where_a_live_stream_would() -> None:
    """A batch may hold a whole turn (a reconnect's snapshot): the card goes below the text written
    before the turn's first call and above the reply after it, not below everything."""
    text_first = Message(
        id=6,
        role="assistant",
        content=(
            Part(type="text", text="Looking."),
            Part(type="tool-call", tool_call_id="c1", tool_name="execute", args={"command": "ls"}),
        ),
    )
    view = ThreadView()
    view.apply(
        [
            ConnectedEvent(),
            message(5, "user", "fix it"),
            RUNNING,
            MessageEvent(message=text_first),
            message(7, "tool"),
            message(8, "assistant", "Fixed it."),
            WAITING,
        ]
    )
    assert changed(view) == ["after:5", "card:5", "after:7"]
    assert card(view).startswith("✅ Done · 1 tool")
    call_first = Message(id=10, role="assistant", content=tuple(reversed(text_first.content)))
    view.apply([message(9, "user", "again"), RUNNING, MessageEvent(message=call_first)])
    assert changed(view)[-2:] == ["card:9", "after:9"]


def test_text_streamed_before_a_call_in_the_same_batch_stays_above_the_card() -> None:
    """Deltas of text and of the first call in one batch: the draft is placed first, as it streamed."""
    view = ThreadView()
    view.apply([ConnectedEvent(), message(5, "user", "fix it"), RUNNING])
    view.apply([delta("Let me look."), tool_call("c1", "execute", {"command": "ls"})])
    assert changed(view) == ["draft", "card:5"]
    assert ("draft", "Let me look.", False) in shown(view)


def test_card_is_rebuilt_after_a_restart() -> None:
    """Seeded with the turn's persisted messages, a restarted view keeps the same card key and count."""
    turn = [
        message(5, "user", "go").message,
        MessageEvent(
            message=Message(
                id=6,
                role="assistant",
                content=(
                    Part(type="tool-call", tool_call_id="c1", tool_name="execute", args={"command": "ls"}),
                ),
            )
        ).message,
        MessageEvent(
            message=Message(id=7, role="tool", content=(Part(type="tool-result", tool_call_id="c1"),))
        ).message,
    ]
    view = ThreadView(after_id=7, turn=turn)
    view.apply([ConnectedEvent(after_id=7), RUNNING, tool_call("c2", "execute", {"command": "make"})])
    assert [b.key.encode() for b in view.blocks] == ["card:5"]
    assert card(view).startswith("⏳ Working · 2 tools")


def test_a_turn_over_before_a_restart_keeps_its_card_done_while_the_next_one_runs() -> None:
    """Restarted while a newer turn runs: the snapshot's status says running before the newer turn's
    message comes, and the older turn's card must not be shown as working again on the way."""
    turn = [
        message(5, "user", "go").message,
        _tool_message(6, "c1", "execute", {"command": "ls"}).message,
        MessageEvent(
            message=Message(id=7, role="tool", content=(Part(type="tool-result", tool_call_id="c1"),))
        ).message,
        message(8, "assistant", "Listed.").message,
    ]
    view = ThreadView(after_id=8, turn=turn, newer_turn=9)
    view.apply([ConnectedEvent(after_id=8), RUNNING, tool_call("c2", "execute", {"command": "make"})])
    assert "card:5" not in changed(view)
    view.apply([message(9, "user", "and now make")])
    (older, older_final), (newer, newer_final) = _cards(view)["card:5"], _cards(view)["card:9"]
    assert older_final
    assert older.startswith("✅ Done · 1 tool")
    assert not newer_final
    assert newer.startswith("⏳ Working · 1 tool")


def test_outcome_says_how_the_turn_ended() -> None:
    """Once idle, the view reports the turn: done with the files touched, failed, or stopped by a person."""
    view = ThreadView()
    view.apply([message(5, "user", "go"), RUNNING, tool_call("c1", "edit", {"path": "src/a.py"})])
    assert view.outcome() is None, "nothing to report while the agent works"
    view.mark_stopped()
    view.apply([tool_result("c1"), WAITING])
    outcome = view.outcome()
    assert outcome is not None
    assert (outcome.turn_id, outcome.phase, outcome.touched, outcome.stopped) == (
        5,
        ChatPhase.IDLE,
        ("a.py",),
        True,
    )
    view.apply(
        [
            message(9, "user", "again"),
            RUNNING,
            ErrorEvent(message="boom"),
            StatusEvent(status=ChatStatus(phase=ChatPhase.ERROR, name="error")),
        ]
    )
    failed = view.outcome()
    assert failed is not None
    assert failed.failure is not None
    assert (failed.turn_id, failed.phase, failed.failure.message, failed.stopped) == (
        9,
        ChatPhase.ERROR,
        "boom",
        False,
    )


def test_card_of_a_turn_is_done_when_a_queued_message_starts_the_next_turn() -> None:
    """Coder going straight on to a queued message ends the turn before it: its card says done."""
    view = ThreadView()
    view.apply(
        [
            message(5, "user", "fix it"),
            RUNNING,
            message(6, "assistant", "Looking.", tool=True),
            message(7, "tool"),
            message(8, "user", "also add a test"),
            message(9, "assistant", "Adding it.", tool=True),
        ]
    )
    cards = {b.key.encode(): b for b in view.blocks if b.key.encode().startswith("card:")}
    assert cards["card:5"].final
    assert text(cards["card:5"]).startswith("✅ Done · 1 tool")
    assert not cards["card:8"].final


def test_queued_turn_does_not_bring_back_the_previous_turns_text() -> None:
    """Coder going straight on to a queued message: the finished turn's deltas make no new draft."""
    view = ThreadView()
    view.apply([message(5, "user", "fix it"), RUNNING, delta("Fixed "), delta("it.")])
    view.apply([message(6, "assistant", "Fixed it.")])
    view.apply([message(7, "user", "also add a test")])
    assert shown(view) == [("after:5", "Fixed it.", True)]
    view.apply([delta("Added.")])
    assert shown(view) == [("after:5", "Fixed it.", True), ("draft", "Added.", False)]


def retry(attempt: int, delay_ms: int = 8000, error: str = "Anthropic is overloaded") -> RetryEvent:
    return RetryEvent(attempt=attempt, delay_ms=delay_ms, error=error)


def lines(view: ThreadView, prefix: str) -> list[tuple[str, str, bool]]:
    return [(b.key.encode(), text(b), b.final) for b in view.blocks if b.key.encode().startswith(prefix)]


def test_retries_are_one_line_edited_in_place_then_marked_recovered() -> None:
    """Each retry rewrites the same line; the first output after them marks it recovered, for good."""
    view = ThreadView()
    view.apply([message(5, "user", "go"), RUNNING, retry(1, 1000)])
    assert lines(view, "retry:") == [
        ("retry:5:1", "⟳ Retrying (attempt 1) in 1s: Anthropic is overloaded", False)
    ]
    view.apply([retry(2, 8000)])
    assert lines(view, "retry:") == [
        ("retry:5:1", "⟳ Retrying (attempt 2) in 8s: Anthropic is overloaded", False)
    ]
    view.apply([delta("Hello")])
    assert lines(view, "retry:") == [("retry:5:1", "✓ Recovered after 2 retries", True)]
    assert ("draft", "Hello", False) in shown(view)


def test_retries_that_end_in_an_error_say_so() -> None:
    """Coder giving up turns the retry line into a final one; the error itself is shown as well."""
    view = ThreadView()
    view.apply([message(5, "user", "go"), RUNNING, retry(1, 200)])
    view.apply(
        [
            ErrorEvent(message="overloaded (529)"),
            StatusEvent(status=ChatStatus(phase=ChatPhase.ERROR, name="error")),
        ]
    )
    assert lines(view, "retry:") == [("retry:5:1", "✗ Gave up after 1 retry: Anthropic is overloaded", True)]
    assert ("error:5", "⚠️ overloaded (529)", True) in shown(view)


def test_a_later_series_of_retries_gets_its_own_line() -> None:
    """Retries after a recovery start a new line: the finished one is never rewritten."""
    view = ThreadView()
    view.apply([message(5, "user", "go"), RUNNING, retry(1), delta("Hi"), retry(1)])
    assert [key for key, _, _ in lines(view, "retry:")] == ["retry:5:1", "retry:5:2"]
    view.apply([WAITING])
    assert lines(view, "retry:")[1] == ("retry:5:2", "⟳ Stopped retrying after 1 retry", True)


PENDING = StatusEvent(status=ChatStatus(phase=ChatPhase.STARTING, name="pending"))


def test_slow_start_shows_a_card_with_its_duration() -> None:
    """A turn pending past the threshold gets a card saying it is starting, with the time taken."""
    view = ThreadView(slow_start=10)
    view.apply([message(5, "user", "go"), PENDING], now=100)
    assert view.clock_running
    assert lines(view, "card:") == []
    view.tick(105)
    assert lines(view, "card:") == []
    view.tick(170)
    assert lines(view, "card:") == [("card:5", "⏳ Starting… 1m 10s", False)]
    view.apply([RUNNING, delta("Hi")], now=171)
    assert lines(view, "card:") == [("card:5", "⏳ Working", False)]
    assert not view.clock_running
    view.apply([message(6, "assistant", "Hi"), WAITING], now=172)
    assert lines(view, "card:") == [("card:5", "✅ Done", True)]


def test_workspace_tools_say_the_workspace_is_starting() -> None:
    """While chatd's create_workspace runs, the card says the workspace is starting and for how long."""
    view = ThreadView()
    view.apply([message(5, "user", "go"), RUNNING, tool_call("c1", "create_workspace", {"name": "w"})], now=0)
    view.tick(70)
    assert card(view).startswith("⏳ Starting workspace… 1m 10s · 1 tool\n")
    view.apply([tool_result("c1"), tool_call("c2", "execute", {"command": "ls"})], now=71)
    assert card(view).startswith("⏳ Working · 2 tools\n")


def test_fast_start_shows_no_card() -> None:
    """A start quicker than the threshold leaves the thread as it was: no card for a plain reply."""
    view = ThreadView(slow_start=10)
    view.apply([message(5, "user", "go"), PENDING], now=0)
    view.apply([RUNNING, delta("Hi")], now=3)
    view.tick(30)
    assert lines(view, "card:") == []


def reasoning(text: str) -> PartEvent:
    return PartEvent(role="assistant", part=Part(type="reasoning", text=text))


def test_reasoning_is_hidden_by_default() -> None:
    """Reasoning deltas and persisted reasoning never reach the thread unless asked for."""
    view = ThreadView()
    persisted = Message(
        id=6, role="assistant", content=(Part(type="reasoning", text="Think."), Part(type="text", text="Hi"))
    )
    view.apply([message(5, "user", "go"), RUNNING, reasoning("Think."), delta("Hi")])
    assert shown(view) == [("draft", "Hi", False)]
    view.apply([MessageEvent(message=persisted), WAITING])
    assert shown(view) == [("after:5", "Hi", True)]


def test_reasoning_is_quoted_above_the_reply_when_shown() -> None:
    """With reasoning shown, the draft and the final reply start with it, quoted and trimmed."""
    view = ThreadView(show_reasoning=True)
    long = "I should look at auth first. " * 30
    persisted = Message(
        id=6, role="assistant", content=(Part(type="reasoning", text=long), Part(type="text", text="Hi"))
    )
    view.apply([message(5, "user", "go"), RUNNING, reasoning(long)])
    [(key, text, _)] = shown(view)
    assert key == "draft"
    assert text.startswith("> 💭 _I should look at auth first.")
    assert len(text) < 320
    view.apply([delta("Hi"), MessageEvent(message=persisted), WAITING])
    [(key, text, final)] = shown(view)
    assert (key, final) == ("after:5", True)
    assert text.endswith("…_\n\nHi")


def test_unknown_status_is_skipped() -> None:
    """A status a newer Coder invented keeps the last known one: the turn is still followed."""
    view = ThreadView()
    view.apply([message(5, "user", "go"), RUNNING])
    view.apply([StatusEvent(status=ChatStatus(phase=ChatPhase.UNKNOWN, name="compacting"))])
    assert view.busy
    assert view.status == RUNNING.status
    assert not view.status_changed


def test_waiting_for_the_user_is_an_outcome_naming_the_tools() -> None:
    """requires_action ends the turn for now: its outcome says the agent waits, and for which tools."""
    needs_user = StatusEvent(status=ChatStatus(phase=ChatPhase.NEEDS_USER, name="requires_action"))
    view = ThreadView()
    view.apply([message(5, "user", "go"), RUNNING, tool_call("c1", "ask_user_question", {"q": "Which DB?"})])
    view.apply(
        [
            needs_user,
            ActionRequiredEvent(calls=(ClientCall(tool_call_id="c1", tool_name="ask_user_question"),)),
        ]
    )
    outcome = view.outcome()
    assert outcome is not None
    assert (outcome.phase, outcome.waiting_for) == (ChatPhase.NEEDS_USER, ("ask_user_question",))
    assert card(view).startswith("✋ Waiting for you · 1 tool")


def test_turn_that_waited_goes_on_in_its_card() -> None:
    """The wait ends and the same turn goes on: its card is live again, then done, in the same block."""
    needs_user = StatusEvent(status=ChatStatus(phase=ChatPhase.NEEDS_USER, name="requires_action"))
    view = ThreadView()
    view.apply([message(5, "user", "go"), RUNNING, tool_call("c1", "ask_user_question", {"q": "Which DB?"})])
    view.apply([needs_user])
    assert [(b.key.encode(), b.final) for b in view.blocks if b.key.encode().startswith("card:")] == [
        ("card:5", True)
    ]
    view.apply([RUNNING])
    assert card(view).startswith("⏳ Working · 1 tool")
    assert "card:5" in changed(view)
    view.apply([message(7, "assistant", "Thanks."), WAITING])
    assert card(view).startswith("✅ Done · 1 tool")
    assert view.outcome() is not None


def test_message_that_ends_a_wait_closes_the_card_that_waited() -> None:
    """A queued message promoted out of a wait starts a new turn: the waiting turn's card says done."""
    needs_user = StatusEvent(status=ChatStatus(phase=ChatPhase.NEEDS_USER, name="requires_action"))
    view = ThreadView()
    view.apply([message(5, "user", "go"), RUNNING, tool_call("c1", "ask_user_question", {"q": "Which DB?"})])
    view.apply([needs_user])
    view.apply([message(7, "user", "Postgres"), RUNNING])
    assert [text(b).split(" ·")[0] for b in view.blocks if b.key.encode() == "card:5"] == ["✅ Done"]


def test_blocks_hold_data_and_the_renderer_words_it() -> None:
    """The view says what a block holds (a reply, a card's calls); Slack wording, mentions defused
    included, is ``slack.thread_text``'s, so the fold's values compare without any markup."""
    view = ThreadView()
    view.apply(
        [
            message(5, "user", "go"),
            RUNNING,
            delta("Reading <@U0BOB>'s file."),
            tool_call("c1", "read_file", {"path": "src/a.py"}),
            ErrorEvent(message="model overloaded"),
        ]
    )
    assert block(view, "draft").content == Reply("Reading <@U0BOB>'s file.")
    failure = view.failure
    assert failure is not None
    assert failure.message == "model overloaded"
    assert block(view, "card:5").content == Card(
        (ToolLine("read_file", "src/a.py", "running", "c1"),), ChatPhase.WORKING, ("a.py",), failure, None
    )
    assert block(view, "error:5").content == Failed(failure)
    assert "<@U0BOB>" not in text(block(view, "draft")), "the renderer shows a mention, never sends it"
    assert text(block(view, "error:5")) == "⚠️ model overloaded"


def test_compact_turn_keeps_its_steps_on_the_card_and_posts_one_reply() -> None:
    """Compact: text streamed before the first tool call becomes the card (same Slack message), the
    steps stream onto it as its latest lines, and only the final text is a reply of its own."""
    view = ThreadView(compact=True)
    view.apply([ConnectedEvent(), message(5, "user", "fix it"), RUNNING, delta("Looking at the tests.")])
    assert shown(view) == [("draft", "Looking at the tests.", False)]
    view.apply([tool_call("c1", "execute", {"command": "pytest"})])
    assert renamed(view) == [("draft", "card:5")]
    assert [b.key.encode() for b in view.blocks] == ["card:5"]
    view.apply([message(6, "assistant", "Looking at the tests.", tool=True), tool_result("c1")])
    view.apply([delta("Now let me look at\nthe fixture.")])
    assert card(view).endswith("> Looking at the tests.\n> Now let me look at\n> the fixture.")
    assert [b.key.encode() for b in view.blocks] == ["card:5"], "no message per step"
    view.apply([message(7, "tool"), message(8, "assistant", "Fixed it.")])
    assert shown(view) == [("after:7", "Fixed it.", True)]
    view.apply([WAITING])
    assert card(view).startswith("✅ Done · ")
    assert ">" not in card(view), "a turn that ended well leaves its card without the steps"


def test_compact_card_keeps_its_steps_when_the_turn_fails_or_waits() -> None:
    """A failed turn has no final reply: its card keeps the last lines the agent wrote."""
    view = ThreadView(compact=True)
    view.apply([message(5, "user", "go"), RUNNING, message(6, "assistant", "Trying make.", tool=True)])
    view.apply(
        [ErrorEvent(message="boom"), StatusEvent(status=ChatStatus(phase=ChatPhase.ERROR, name="error"))]
    )
    assert card(view).endswith("> Trying make.")
    assert not [key for key, _, _ in shown(view) if key.startswith("after:")]


def test_compact_turn_cut_short_keeps_what_it_streamed_as_a_reply() -> None:
    """An interrupted compact turn posts what was streaming when it stopped, as full style does."""
    view = ThreadView(compact=True)
    view.apply([message(5, "user", "go"), RUNNING, tool_call("c1", "execute", {"command": "ls"})])
    view.apply([delta("Half an ans")])
    assert "> Half an ans" in card(view)
    view.apply([WAITING])
    view.finish()
    assert ("partial:5", "Half an ans", True) in shown(view)


def test_a_spawned_sub_agent_is_a_card_line_its_wait_and_the_watch_keep_current() -> None:
    """spawn_agent's result names the child chat (titled as the call or its result says); the watch
    moves its status, wait_agent's result too; a chat the turn did not spawn changes nothing."""
    view = ThreadView(chat_url=lambda chat_id: f"https://coder/agents/{chat_id}")

    def call(id_: int, name: str, args: object, result: object) -> list[StreamEvent]:
        ids = {"tool_call_id": f"t{id_}", "tool_name": name}
        return [
            MessageEvent(
                message=Message(id=id_, role="assistant", content=(Part(type="tool-call", args=args, **ids),))
            ),
            MessageEvent(
                message=Message(
                    id=id_ + 1, role="tool", content=(Part(type="tool-result", result=result, **ids),)
                )
            ),
        ]

    spawn = call(
        6, "spawn_agent", {"title": "Run tests", "prompt": "go"}, {"chat_id": "c2", "status": "running"}
    )
    view.apply([message(5, "user", "check"), RUNNING, *spawn])
    assert card(view).endswith("- 🤖 [Run tests](https://coder/agents/c2) · ⚙️ working")
    assert not view.agent_changed("c9", ChatStatus(phase=ChatPhase.IDLE, name="waiting"))
    assert view.agent_changed("c2", ChatStatus(phase=ChatPhase.ERROR, name="error"))
    assert changed(view) == ["card:5"]
    assert card(view).endswith("· ❌ failed")
    view.apply(
        call(8, "wait_agent", {"chat_id": "c2"}, {"chat_id": "c2", "status": "waiting", "report": "ok"})
    )
    assert card(view).endswith("- 🤖 [Run tests](https://coder/agents/c2) · ✅ done")
    plan = plan_of(view, "card:5")
    assert plan is not None
    assert [s.state for s in plan.steps if s.summary == "sub-agent"] == ["ok"]


def test_a_turn_the_stream_went_past_is_reported_once_the_next_turn_begins() -> None:
    """Coder ended a turn and began the next (a queued follow-up taken) while the view saw no idle
    status: the next user message reports the turn before it, with what it touched, once."""
    view = ThreadView()
    view.apply([ConnectedEvent(), message(5, "user", "fix it"), RUNNING, message(6, "assistant", "Fixed.")])
    assert view.take_passed() == []
    view.apply([message(7, "assistant", "Also the docs."), message(8, "user", "and the tests"), RUNNING])
    passed = view.take_passed()
    assert [(p.outcome.turn_id, p.outcome.phase) for p in passed] == [(5, ChatPhase.IDLE)]
    assert view.changed[: passed[0].at] == [SlotKey.reply_after(6)], "its line goes after the turn's reply"
    assert view.take_passed() == [], "taken once"


def test_a_turn_whose_end_was_told_is_not_reported_again() -> None:
    """A turn the caller finished (its end told, or its wait for the person) is over: the message
    that begins the next turn reports nothing."""
    view = ThreadView()
    view.apply(
        [ConnectedEvent(), message(5, "user", "fix it"), RUNNING, message(6, "assistant", "Fixed."), WAITING]
    )
    view.finish()
    view.apply([message(7, "user", "and the tests"), RUNNING])
    assert view.take_passed() == []


def test_a_turn_that_failed_unseen_is_reported_as_failed() -> None:
    """An error event came in the turn the stream went past: the report says it failed."""
    view = ThreadView()
    view.apply([ConnectedEvent(), message(5, "user", "fix it"), RUNNING, ErrorEvent(message="overloaded")])
    view.apply([message(7, "user", "again"), RUNNING])
    assert [(p.outcome.turn_id, p.outcome.phase) for p in view.take_passed()] == [(5, ChatPhase.ERROR)]
