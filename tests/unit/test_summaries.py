"""Coder's turn summary meets the turn's completion line, whichever comes first."""

from __future__ import annotations

from bridge.coder.types import ChatId
from bridge.relay.outbox import ThreadRef, final_text
from bridge.relay.output import SlotText
from bridge.relay.summaries import TurnSummaries

CHAT = ChatId("c1")
REF = ThreadRef(1, "C1", "1.0")


def line(summary: str) -> SlotText:
    return final_text("outcome:7", f"done: {summary}")


def test_a_summary_that_comes_first_is_rendered_by_the_follow() -> None:
    """Before the line is stored, the watch only leaves the summary; the follow renders it, and
    storing the line asks for nothing more."""
    summaries = TurnSummaries()
    assert summaries.summarized(CHAT, 7, "Fixed it") is None
    assert summaries.summary(CHAT, 7) == "Fixed it"
    assert summaries.stored(CHAT, 7, REF, "Fixed it", line) is None


def test_a_summary_that_comes_later_edits_the_stored_line_once() -> None:
    """Once the line is stored, a summary edits it; the same summary again changes nothing."""
    summaries = TurnSummaries()
    assert summaries.stored(CHAT, 7, REF, "", line) is None
    assert summaries.summarized(CHAT, 7, "Fixed it") == (REF, line("Fixed it"))
    assert summaries.summarized(CHAT, 7, "Fixed it") is None


def test_a_summary_while_the_line_was_being_stored_is_stored_after_it() -> None:
    """The follow read no summary, the watch brought one before the line was stored: the follow
    stores the line again with it (the watch wrote nothing, so nothing overtakes the follow)."""
    summaries = TurnSummaries()
    shown = summaries.summary(CHAT, 7)
    assert summaries.summarized(CHAT, 7, "Fixed it") is None
    assert summaries.stored(CHAT, 7, REF, shown, line) == line("Fixed it")


def test_summaries_of_other_turns_are_not_shown_on_this_one() -> None:
    """A summary of an older turn edits nothing; one of a newer turn waits for that turn's line."""
    summaries = TurnSummaries()
    summaries.stored(CHAT, 7, REF, "", line)
    assert summaries.summarized(CHAT, 5, "old") is None
    assert summaries.summarized(CHAT, 9, "next") is None
    assert summaries.summary(CHAT, 7) == ""
    assert summaries.summary(CHAT, 9) == "next"
