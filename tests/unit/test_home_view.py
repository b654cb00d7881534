"""The App Home renderer: a person's chats with their state, links and the shared control buttons."""

from __future__ import annotations

from bridge.coder.types import ChatDiffStatus, ChatPhase, ChatStatus
from bridge.slack.home_view import MAX_CHATS, SUMMARY_LIMIT, TITLE_LIMIT, HomeChat, HowTo, render_home

HOW_TO = HowTo(interrupt="octagonal_sign", archive="file_cabinet")


def _chat(n: int = 1, *, phase: ChatPhase = ChatPhase.IDLE, **fields: object) -> HomeChat:
    values: dict[str, object] = {
        "chat_id": f"chat-{n}",
        "title": f"Task {n}",
        "status": ChatStatus(phase=phase, name="running" if phase.busy else "waiting"),
        "archived": False,
        "diff": None,
        "thread_url": f"https://example.slack.com/archives/C1/p{n}",
        "coder_url": f"https://coder.example.com/agents/chat-{n}",
    }
    values.update(fields)
    return HomeChat(**values)  # type: ignore[arg-type]


def _buttons(view: dict[str, object]) -> list[tuple[str, str]]:
    return [
        (e["action_id"], e.get("value") or e.get("url"))
        for b in view["blocks"]  # type: ignore[attr-defined]
        if b["type"] == "actions"
        for e in b["elements"]
    ]


def test_a_busy_chat_offers_stop_archive_and_open() -> None:
    """Stop only while the agent works; Archive; Open in Coder as a URL button; the chat id as value."""
    view = render_home([_chat(phase=ChatPhase.WORKING)], HOW_TO)
    assert view["type"] == "home"
    assert _buttons(view) == [
        ("chat_stop", "chat-1"),
        ("chat_archive", "chat-1"),
        ("chat_open", "https://coder.example.com/agents/chat-1"),
    ]
    assert (
        view["blocks"][3]["text"]["text"] == "*<https://example.slack.com/archives/C1/p1|Task 1>*\n⚙️ working"
    )


def test_an_archived_chat_offers_unarchive() -> None:
    """An archived chat says so and offers Unarchive instead of Archive, and no Stop."""
    view = render_home([_chat(phase=ChatPhase.WORKING, archived=True)], HOW_TO)
    assert [a for a, _ in _buttons(view)] == ["chat_unarchive", "chat_open"]
    assert "🗄️ archived" in str(view["blocks"])


def test_pull_request_state_and_escaped_titles() -> None:
    """The PR's state links to it; a title cannot break out of its link."""
    diff = ChatDiffStatus(url="https://github.com/o/r/pull/7", pull_request_state="merged", pr_number=7)
    text = str(render_home([_chat(title="a <b> | c & d", diff=diff)], HOW_TO)["blocks"])
    assert "<https://github.com/o/r/pull/7|PR #7> 🟣 merged" in text
    assert "a &lt;b&gt; ¦ c &amp; d" in text


def test_a_long_title_keeps_every_section_within_slacks_limit() -> None:
    """A title of thousands of characters that grow when escaped is cut with an ellipsis, never in
    the middle of an entity, so no section passes Slack's 3,000 characters."""
    view = render_home([_chat(title="<&>" * 2_000)], HOW_TO)
    texts = [b["text"]["text"] for b in view["blocks"] if b["type"] == "section"]  # type: ignore[index]
    assert all(len(t) <= 3_000 for t in texts)
    line = next(t for t in texts if "…" in t)
    title = line.split("|", 1)[1].split(">*", 1)[0]
    assert len(title) <= TITLE_LIMIT
    assert title.endswith(("&lt;…", "&amp;…", "&gt;…"))


def test_coders_summary_of_the_chat_is_its_third_line() -> None:
    """Coder's summary of the chat follows the status, on one line, escaped and cut short."""
    view = render_home([_chat(summary="Fixed <the>\nlogin " + "bug " * 500)], HOW_TO)
    text = view["blocks"][3]["text"]["text"]
    head = "*<https://example.slack.com/archives/C1/p1|Task 1>*\n💤 waiting\n"
    assert text.startswith(head + "_Fixed &lt;the&gt; login bug")
    assert len(text.splitlines()[2]) <= SUMMARY_LIMIT + 2
    assert text.endswith("…_")


def test_no_chats_and_too_many_chats() -> None:
    """Nobody's chats: the how-to and a hint; many: capped, with the rest counted."""
    empty = str(render_home([], HOW_TO)["blocks"])
    assert "No chats yet" in empty
    assert ":octagonal_sign:" in empty
    many = render_home([_chat(n) for n in range(MAX_CHATS + 2)], HOW_TO, older=3)
    assert len(_buttons(many)) == 2 * MAX_CHATS
    assert "…and 5 older chat(s)" in str(many["blocks"])
    assert len(many["blocks"]) <= 100
