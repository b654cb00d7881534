"""Pure: a thread view's block contents (``relay.content``) as the Slack text and plan that show them.

The view says what a block holds; this is the one place that says how it reads. Everything in a
view comes from the agent or Coder, so a person's mention in it is shown, not sent: the text is
``unmention``-ed whole, and each part of a plan on its own; a question's renderer unmentions the
agent's words in it itself, as it may name the person who answered.
"""

from __future__ import annotations

from bridge.coder.types import ChatPhase, ChatStatus
from bridge.relay.content import (
    Answered,
    Asking,
    Card,
    ClientTool,
    Closing,
    Content,
    Failed,
    Plan,
    Reply,
    Restarting,
    RetriesOver,
    Retrying,
    Step,
    Unanswered,
)
from bridge.slack.blocks import (
    RESTARTING,
    call_state,
    card_title,
    render_answered,
    render_card,
    render_card_head,
    render_client_tool,
    render_error,
    render_question,
    render_reasoning,
    render_retry,
    render_retry_end,
    render_unanswered,
)
from bridge.slack.defuse import unmention
from bridge.slack.failures import render_failure, render_reason


def render_content(content: Content) -> str:
    """What a block shows in Slack (Markdown)."""
    match content:
        case Asking(questions=questions, closing=closing):
            return render_question(questions, closing=_closing(closing))  # it may name who answered
        case ClientTool(name=name, closing=closing):
            return render_client_tool(name, closing=_closing(closing))
        case Reply(text=text, reasoning=reasoning):
            quote = render_reasoning(reasoning)
            shown = f"{quote}\n\n{text}" if quote and text else quote or text
        case Restarting():
            shown = RESTARTING
        case Card():
            shown = render_card(
                content.calls,
                phase=content.phase,
                touched=content.touched,
                reason=render_reason(content.failure),
                starting=content.starting,
                agents=content.agents,
                latest=content.latest,
            )
        case Retrying(attempt=attempt, delay_ms=delay_ms, error=error):
            shown = render_retry(attempt, delay_ms, error)
        case RetriesOver(attempts=attempts, outcome=outcome, error=error):
            shown = render_retry_end(attempts, outcome=outcome, error=error)
        case Failed(failure=failure):
            shown = render_error(render_failure(failure))
    return unmention(shown)


def render_plan(card: Card) -> Plan:
    """The card in parts, for a poster that shows the turn's tool calls natively; a sub-agent is a
    step of its own, keyed by its chat."""
    steps = tuple(
        Step(c.id, unmention(c.name), unmention(c.summary), call_state(c.state, card.phase))
        for c in card.calls
    ) + tuple(
        Step(a.id, unmention(a.title or "sub-agent"), "sub-agent", _agent_state(a.status))
        for a in card.agents
    )
    head = render_card_head(
        len(steps),
        phase=card.phase,
        touched=card.touched,
        reason=render_reason(card.failure),
        starting=card.starting,
    )
    return Plan(card_title(card.phase, card.starting), steps, unmention(head), final=card.final)


def _agent_state(status: ChatStatus | None) -> str:
    """A sub-agent as a step's state: running while its chat works or waits, then ok or error."""
    if status is None or status.phase.busy or status.phase is ChatPhase.NEEDS_USER:
        return "running"
    return "error" if status.phase is ChatPhase.ERROR else "ok"


def _closing(closing: Closing | None) -> str:
    """How a question ended, in words (the agent's words in it defused by its renderer)."""
    match closing:
        case Answered(answer=answer, user=user):
            return render_answered(answer, user)
        case Unanswered(reason=reason, timed_out=timed_out, minutes=minutes):
            return render_unanswered(reason, timed_out=timed_out, minutes=minutes)
    return ""
