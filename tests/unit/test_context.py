"""Thread context: earlier messages, attributed, newest kept first within count and size bounds."""

from __future__ import annotations

from bridge.relay.context import HEADING, earlier, render_context
from bridge.relay.ports import SlackFile, ThreadMessage


def _message(ts: str, user: str, text: str, *files: str, bot: bool = False) -> ThreadMessage:
    return ThreadMessage(
        ts=ts, user_id=user, text=text, files=tuple(SlackFile(f, f, "") for f in files), from_bot=bot
    )


def test_earlier_leaves_out_the_mention_later_messages_and_the_bots_own_posts() -> None:
    """Only what came before the mention counts, and never the bot's own messages."""
    thread = [
        _message("1.0", "U1", "root"),
        _message("2.0", "UBOT", "bot said", bot=True),
        _message("3.0", "B9", "other bot", bot=True),
        _message("4.0", "U2", ""),
        _message("5.0", "U2", "@bot go"),
        _message("6.0", "U1", "later"),
    ]
    kept = earlier(thread, before_ts="5.0", bot_user_id="UBOT")
    assert [m.ts for m in kept] == ["1.0", "3.0"]


def test_context_attributes_messages_and_keeps_their_files() -> None:
    """Each line names its author (bots marked) and lists attached files, oldest first."""
    text, files = render_context(
        [_message("1.0", "U1", "line one\nline two", "a.png"), _message("2.0", "B9", "beep", bot=True)],
        max_messages=5,
        max_chars=1000,
    )
    assert text == f"{HEADING}\nU1: line one\n  line two [attached: a.png]\nB9 (bot): beep"
    assert [f.name for f in files] == ["a.png"]


def test_context_keeps_the_newest_within_the_bounds_and_says_what_it_left_out() -> None:
    """Past the count or size limit the oldest messages are dropped, with their files, and counted."""
    thread = [_message(f"{n}.0", "U1", f"m{n}", f"f{n}.png") for n in range(6)]
    text, files = render_context(thread, max_messages=3, max_chars=1000)
    assert text.splitlines()[1:] == [
        "(3 older messages left out)",
        "U1: m3 [attached: f3.png]",
        "U1: m4 [attached: f4.png]",
        "U1: m5 [attached: f5.png]",
    ]
    assert [f.name for f in files] == ["f3.png", "f4.png", "f5.png"]
    small, _ = render_context(thread, max_messages=6, max_chars=len(HEADING) + 30)
    assert small.splitlines()[-1] == "U1: m5 [attached: f5.png]"
    assert render_context(thread, max_messages=0, max_chars=1000) == ("", ())
