"""Pure: what a person reads when Coder fails, one plain line that says what to do about it.

Coder classifies failures (``ErrorKind``): a usage limit, a missing or refused provider key, a
disabled provider and the like each get their own advice after Coder's message (and its
``detail``, which carries the provider's own words); a kind with nothing for the person to do,
or one this bridge does not know, shows Coder's message alone. An answer Coder sent that could not
be read shows only its error id: the parser's text is in the log under that id, never here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bridge.coder.errors import CoderError, CoderUnavailable, CoderUnreadable
from bridge.coder.types import BackendNotice, ChatFailure, ErrorKind
from bridge.slack.defuse import unmention

_ADVICE: Mapping[ErrorKind, str] = {
    ErrorKind.USAGE_LIMIT: (
        "A usage limit is used up: wait until it resets, or ask your Coder administrator to raise it."
    ),
    ErrorKind.MISSING_KEY: (
        "The model provider's API key is missing: add your key for it in Coder (your account's AI "
        "provider keys) or ask your Coder administrator, then send your message again."
    ),
    ErrorKind.AUTH: (
        "The model provider refused its API key: update your key for it in Coder (your account's AI "
        "provider keys) or ask your Coder administrator to check it."
    ),
    ErrorKind.PROVIDER_DISABLED: (
        "The model's provider is switched off in Coder: start the task with another model "
        "(`model=NAME`) or ask your Coder administrator to enable it."
    ),
    ErrorKind.CONFIG: (
        "The provider rejected the model's settings: try another model (`model=NAME`) or ask your "
        "Coder administrator to check this one."
    ),
    ErrorKind.CONTENT_FILTER: "The provider's content filter blocked it: rephrase your message, then retry.",
    ErrorKind.HOOK_DENIED: "A Coder hook refused it: ask your Coder administrator if that seems wrong.",
    ErrorKind.HOOK_DISPATCH_FAILED: "A Coder hook could not run: try again, or tell your Coder admin.",
}


_NOTICES: Mapping[BackendNotice, str] = {
    BackendNotice.REPLY_CUT_BY_RESTART: (
        "The bridge restarted while the agent was replying. This Coder version ends a reply when the "
        "connection that asked for it closes, so the rest of that answer is lost; reply here to continue."
    ),
    BackendNotice.FOLLOW_UP_UNSENT: (
        "A queued follow-up could not be sent ({error}); it stays queued and goes with your next message."
    ),
    BackendNotice.FOLLOW_UP_REFUSED: (
        "Coder refused a queued follow-up ({error}), so it was not sent; please send it again."
    ),
}
"""What the 2025 AI-SDK API's backend observed, worded for the thread (``{error}``: Coder's words)."""


def _sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text[-1] in ".!?" else f"{text}."


def _said(message: str, detail: str, kind: ErrorKind) -> str:
    """Coder's message, its detail in brackets, then the kind's advice. Both carry a provider's or a
    hook's words, so a mention in them is shown, not sent."""
    message, detail = unmention(message.strip()), unmention(detail.strip().rstrip("."))
    text = f"{message.rstrip('.')} ({detail})" if detail else message
    advice = _ADVICE.get(kind)
    return f"{_sentence(text)} {advice}" if advice is not None else text


def render_reason(failure: ChatFailure | None) -> str:
    """Why a turn failed, for a line that says it beside other things (a header, a card, the
    requester's mention); empty when it did not fail, or did not say why."""
    return render_failure(failure) if failure is not None else ""


def render_failure(failure: ChatFailure) -> str:
    """Why a turn failed (a stream ``error`` event, or the chat's ``last_error``), shown on its own."""
    if failure.notice is not BackendNotice.NONE:
        return unmention(_NOTICES[failure.notice].format(error=failure.message))
    return _said(failure.message, failure.detail, failure.kind)


def render_coder_error(exc: CoderError) -> str:
    """Why a call to Coder failed, for the thread: Coder's words by kind, without a library's text;
    no final full stop, as the caller ends the sentence it is part of."""
    if isinstance(exc, CoderUnreadable):
        return (
            f"Coder sent an answer I couldn't read (error id `{exc.error_id}`; details in the bridge's log)"
        )
    if isinstance(exc, CoderUnavailable) and exc.status is None:
        return exc.message.rstrip(".")  # the detail is a network library's text
    text = _said(exc.message, exc.detail, exc.kind).rstrip(".")
    if exc.validations:
        text += ": " + "; ".join(unmention(f"{v.field}: {v.detail}") for v in exc.validations)
    return text


def render_warnings(warnings: Sequence[str]) -> str:
    """What Coder warned of when it took a message (an MCP server it could not use, say)."""
    return "⚠️ Coder noted: " + "; ".join(unmention(w.strip().rstrip(".")) for w in warnings) + "."
