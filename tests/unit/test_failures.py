"""What a person reads when Coder fails: one plain line per kind, never a library's text."""

from __future__ import annotations

import pytest

from bridge.coder.errors import (
    CoderAuthError,
    CoderRejected,
    CoderUnavailable,
    CoderUnreadable,
    Validation,
)
from bridge.coder.types import BackendNotice, ChatFailure, ErrorKind
from bridge.slack.failures import render_coder_error, render_failure, render_warnings


@pytest.mark.parametrize(
    ("kind", "advice"),
    [
        (ErrorKind.USAGE_LIMIT, "A usage limit is used up: wait until it resets"),
        (ErrorKind.MISSING_KEY, "The model provider's API key is missing: add your key"),
        (ErrorKind.AUTH, "The model provider refused its API key: update your key"),
        (ErrorKind.PROVIDER_DISABLED, "start the task with another model (`model=NAME`)"),
        (ErrorKind.CONFIG, "The provider rejected the model's settings"),
        (ErrorKind.CONTENT_FILTER, "content filter blocked it"),
        (ErrorKind.HOOK_DENIED, "A Coder hook refused it"),
        (ErrorKind.HOOK_DISPATCH_FAILED, "A Coder hook could not run"),
    ],
)
def test_each_kind_gets_its_own_advice(kind: ErrorKind, advice: str) -> None:
    """A failure of a kind the person can act on: Coder's message, its detail, then the advice."""
    text = render_failure(ChatFailure(message="Coder says no.", detail="provider words", kind=kind))
    assert text.startswith("Coder says no. (provider words).") or text.startswith(
        "Coder says no (provider words)."
    )
    assert advice in text


@pytest.mark.parametrize("kind", [ErrorKind.GENERIC, ErrorKind.OVERLOADED, ErrorKind.read("solar_flare")])
def test_kinds_without_advice_show_coders_message_alone(kind: ErrorKind) -> None:
    """Transient, generic and unknown kinds: Coder's message (and detail) as it is."""
    assert (
        render_failure(ChatFailure(message="Anthropic is overloaded.", kind=kind))
        == "Anthropic is overloaded."
    )
    assert ErrorKind.read("solar_flare") is ErrorKind.GENERIC


def test_unreadable_answer_shows_only_its_error_id() -> None:
    """The parser's text stays in the log; the line names the error id."""
    exc = CoderUnreadable(
        "Coder sent a chat this bridge could not read", detail="1 validation error for Chat"
    )
    text = render_coder_error(exc)
    assert exc.error_id in text
    assert "validation" not in text
    assert "validation" not in str(exc)


def test_rest_errors_keep_coders_words_without_network_internals() -> None:
    """Coder's message, detail and validations; a network failure's library text is left out."""
    refused = CoderRejected(
        "Invalid labels.", status=400, validations=(Validation("labels", "key must not be empty"),)
    )
    assert render_coder_error(refused) == "Invalid labels: labels: key must not be empty"
    down = CoderUnavailable("Could not reach Coder at http://x", detail="[Errno 111] Connection refused")
    assert render_coder_error(down) == "Could not reach Coder at http://x"
    limited = CoderRejected("Chat usage limit exceeded.", status=409, kind=ErrorKind.USAGE_LIMIT)
    assert render_coder_error(limited).startswith("Chat usage limit exceeded. A usage limit is used up")
    auth = CoderAuthError("You are signed out.", detail="API key is invalid.", status=401)
    assert render_coder_error(auth) == "You are signed out (API key is invalid)"


def test_warnings_read_as_one_line() -> None:
    """Coder's warnings on a message, joined."""
    assert render_warnings(["MCP server jira is unavailable.", "x"]) == (
        "⚠️ Coder noted: MCP server jira is unavailable; x."
    )


def test_a_mention_in_coders_words_is_shown_not_sent() -> None:
    """A provider's or hook's words that name a person (or a warning that does) notify nobody."""
    failure = ChatFailure(message="Ask <@U0ADMIN>", detail="<@U0BOSS> disabled it", kind=ErrorKind.GENERIC)
    assert "<@U0" not in render_failure(failure)
    assert "<@U0" not in render_warnings(["ping <@U0ADMIN>"])
    assert "<@U0" not in render_coder_error(CoderRejected("Ask <@U0ADMIN>", detail="<@U0BOSS>", status=403))


@pytest.mark.parametrize(
    ("notice", "expected"),
    [
        (BackendNotice.REPLY_CUT_BY_RESTART, "The bridge restarted while the agent was replying. This"),
        (BackendNotice.FOLLOW_UP_UNSENT, "A queued follow-up could not be sent (ask <\u2060@U1>); it stays"),
        (BackendNotice.FOLLOW_UP_REFUSED, "Coder refused a queued follow-up (ask <\u2060@U1>), so it was"),
    ],
)
def test_what_the_2025_backend_observed_is_worded_by_the_renderer(
    notice: BackendNotice, expected: str
) -> None:
    """A backend's notice is a fact the Slack renderer words; a mention in Coder's words is shown."""
    assert render_failure(ChatFailure(message="ask <@U1>", notice=notice)).startswith(expected)
