"""What the bridge posts cannot notify a group or disguise a link, through any renderer."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.coder.types import (
    ChatDiffStatus,
    ChatPhase,
    ChatStatus,
    ConnectedEvent,
    ErrorEvent,
    Message,
    MessageEvent,
    Part,
    PartEvent,
    StatusEvent,
)
from bridge.relay.content import Card
from bridge.relay.view import ThreadView
from bridge.slack.blocks import (
    render_diff_summary,
    render_header,
    render_outcome,
    render_status,
)
from bridge.slack.defuse import JOINER, defuse, quoted, unmention
from bridge.slack.home_view import HomeChat, HowTo, render_home
from bridge.slack.poster import _content
from bridge.slack.thread_text import render_plan
from tests.unit.view_shown import text

BROADCASTS = ("<!channel>", "<!here>", "<!everyone>", "<!here|here>", "<!subteam^S0DEVS|@devs>")
EVIL = "https://evil.example/steal"
_LIVE = re.compile(
    r"<@[UW][A-Z0-9]+(?:\|[^>]*)?>|<!(?:channel|here|everyone|subteam\^)[^>]*>|<[^|<>\s!@#\u2060][^|<>\s]*\|[^<>]*>"
)


def _live(text: str) -> list[str]:
    """The control sequences Slack would act on in ``text``: notifications and labelled links."""
    return _LIVE.findall(text)


@pytest.mark.parametrize("broadcast", BROADCASTS)
def test_broadcasts_are_shown_not_sent(broadcast: str) -> None:
    """``<!channel>``, ``<!here>``, ``<!everyone>`` and user groups read the same and notify nobody."""
    shown = defuse(f"done {broadcast} please look")
    assert _live(shown) == []
    assert shown.replace(JOINER, "") == f"done {broadcast} please look"


def test_user_mentions_in_others_words_are_shown_not_sent() -> None:
    """``<@U…>`` (plain or labelled) in someone else's words reads as written and notifies nobody."""
    shown = unmention("ask <@U0BOB> and <@W0CAROL|carol>; List<@NonNull String> stays code")
    assert _live(shown) == []
    assert shown.replace(JOINER, "") == "ask <@U0BOB> and <@W0CAROL|carol>; List<@NonNull String> stays code"


@pytest.mark.parametrize(
    "disguised",
    [
        f"<{EVIL}|https://github.com/coder/coder>",
        f"<{EVIL}|github.com/coder/coder>",
        f"[https://github.com/coder/coder]({EVIL})",
        f'[**docs.python.org**]({EVIL} "Python docs")',
        f"![https://github.com/logo.png]({EVIL})",
    ],
)
def test_a_label_that_names_another_address_shows_the_real_target(disguised: str) -> None:
    """A link whose label looks like an address other than its target is shown as its target."""
    assert defuse(f"see {disguised} now") == f"see <{EVIL}> now"


@pytest.mark.parametrize(
    "honest",
    [
        "<https://github.com/coder/coder|https://github.com/coder/coder/>",
        "<https://x.example|click here>",
        "[github.com/coder/coder](https://github.com/coder/coder)",
        "[foo.py](https://github.com/coder/coder/blob/main/foo.py)",
        "[os.path.join](https://docs.python.org/3/library/os.path.html)",
        "`[https://github.com](https://evil.example)` in code",
        "```\n[https://github.com](https://evil.example)\n```",
        "handlers[event.type](event)",
        "<#C0GENERAL|general>",
        "<!DOCTYPE html>",
    ],
)
def test_honest_links_code_and_names_are_left_alone(honest: str) -> None:
    """Labels that are names, labels equal to their target, code and channel links are untouched."""
    assert defuse(honest) == honest


@given(st.text(alphabet="<!@|[]()`hceanlrU0:/.ps \n", max_size=60))
def test_defusing_twice_changes_nothing(text: str) -> None:
    """Defused text defuses to itself, so a text passed along twice reads the same."""
    once = quoted(text)
    assert quoted(once) == once


def test_agent_replies_cards_and_plans_quote_mentions() -> None:
    """Everything a thread view shows (replies, cards and their plans, errors) quotes people's mentions."""
    view = ThreadView(show_reasoning=True)
    tool = {"command": "echo <@U0BOB>", "path": "<@U0BOB>.py"}
    view.apply(
        [
            ConnectedEvent(),
            MessageEvent(message=Message(id=5, role="user", content=(Part(type="text", text="go"),))),
            StatusEvent(status=ChatStatus(phase=ChatPhase.WORKING, name="running")),
            PartEvent(role="assistant", part=Part(type="reasoning", text="tell <@U0BOB>")),
            PartEvent(role="assistant", part=Part(type="text", text="ask <@U0BOB> <!here>")),
            PartEvent(
                role="assistant",
                part=Part(type="tool-call", tool_call_id="t1", tool_name="<@U0BOB>", args=tool),
            ),
            ErrorEvent(message="<@U0BOB> broke it"),
        ]
    )
    texts = [text(b) for b in view.blocks]
    plans = [render_plan(b.content) for b in view.blocks if isinstance(b.content, Card)]
    assert len(texts) >= 3
    assert plans
    assert [seq for text in texts for seq in _live(defuse(text))] == []
    assert [
        seq for p in plans for s in p.steps for seq in _live(defuse(f"{s.name} {s.summary} {p.head}"))
    ] == []


def test_the_bridges_own_lines_quote_what_they_cite() -> None:
    """Header titles, status reasons, outcome reasons and names, PR titles and branches quote mentions;
    the outcome still mentions its requester."""
    failed = ChatStatus(phase=ChatPhase.ERROR, name="error")
    lines = [
        render_header(
            title="<@U0BOB> fix <!channel>", url="https://coder.example/c/1", status=failed, reason="<@U0BOB>"
        ),
        render_status(failed, reason="blame <@U0BOB>"),
        render_outcome("U0ALICE", phase=ChatPhase.ERROR, touched=[], reason="ask <@U0BOB>"),
        render_outcome("U0ALICE", phase=ChatPhase.NEEDS_USER, touched=[], waiting_for=["<@U0BOB>"]),
        render_diff_summary(
            ChatDiffStatus(
                url="https://github.com/o/r/pull/1", pull_request_title="<@U0BOB>", head_branch="<@U0BOB>"
            ),
            None,
        )
        or "",
    ]
    assert [seq for line in lines for seq in _live(defuse(line))] == ["<@U0ALICE>", "<@U0ALICE>"]


def test_table_cells_and_message_text_are_defused() -> None:
    """A message with a table: its fallback text, its prose and its cells notify nobody."""
    body = _content(
        f"<!channel> see\n\n| who | link |\n|---|---|\n| <!here> | <{EVIL}|https://github.com> |", ()
    )
    assert _live(body["text"]) == []
    assert "<!here>" not in str(body["blocks"])
    assert "|https://github.com>" not in str(body["blocks"])
    assert _live(_content("<!everyone> plain", ())["markdown_text"]) == []


def test_the_home_tab_links_only_where_it_says() -> None:
    """A pull request address from Coder cannot become the label of another address on the Home tab."""
    diff = ChatDiffStatus(url=f"{EVIL}|https://github.com/o/r/pull/7", pull_request_state="open", pr_number=7)
    chat = HomeChat(
        chat_id="c1",
        title="<!channel> <@U0BOB>",
        status=ChatStatus(phase=ChatPhase.IDLE, name="waiting"),
        archived=False,
        diff=diff,
        thread_url="https://example.slack.com/archives/C1/p1",
        coder_url="https://coder.example/agents/c1",
    )
    text = str(render_home([chat], HowTo(interrupt="octagonal_sign", archive="file_cabinet"))["blocks"])
    assert "|https://github.com" not in text
    assert "<!channel>" not in text
    assert "<@U0BOB>" not in text
