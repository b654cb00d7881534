"""What a thread shows, as data: the contents of a ``ThreadView``'s blocks and a card's plan.

The view decides *what* a thread shows (a reply, a turn's card, a retry line, an error); how that
reads in Slack is the Slack renderers' job (``slack.thread_text``), which take these values and
return text. So the fold of Coder's stream into a thread stays free of wording and markup, its tests
compare values, and another surface could render the same view its own way. Everything here is
plain data; the only outside type is Coder's own.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.coder.types import ChatFailure, ChatPhase, ChatStatus, Question


@dataclass(frozen=True)
class ToolLine:
    """One tool call of a turn: ``id`` is Coder's tool call id (a native plan updates the same step by
    it); ``state`` is ``running``, ``ok`` or ``error``."""

    name: str
    summary: str
    """A short hint of what the call does (its first string argument), "" when it has none."""
    state: str
    id: str = ""


@dataclass(frozen=True)
class AgentLine:
    """A sub-agent the turn delegated to (a child chat in Coder): ``id`` is its chat's id (a native
    plan updates its step by it), ``status`` what the watch last told of it (None until it told
    any), ``url`` the child chat in Coder's web UI."""

    id: str
    title: str
    status: ChatStatus | None
    url: str


@dataclass(frozen=True)
class Starting:
    """A turn that has not really begun yet: Coder waits for a worker, or the agent's workspace is
    being created or started (which takes minutes); ``seconds`` is how long that has lasted, in whole
    seconds (what a card shows, so a re-render within the same second changes nothing)."""

    seconds: int
    workspace: bool


@dataclass(frozen=True)
class Reply:
    """The agent's reply (streaming or persisted), with the model's reasoning when it is shown."""

    text: str
    reasoning: str = ""

    @property
    def blank(self) -> bool:
        """Whether it shows nothing yet."""
        return not self.text.strip() and not self.reasoning.strip()


@dataclass(frozen=True)
class Restarting:
    """A reply being streamed that Coder voided (its model call is retried): a placeholder until the
    new attempt's text replaces it in the same message."""


@dataclass(frozen=True)
class Card:
    """A turn's status card: its tool calls, its state, what it touched, why it failed."""

    calls: tuple[ToolLine, ...]
    phase: ChatPhase
    touched: tuple[str, ...]
    failure: ChatFailure | None
    starting: Starting | None
    agents: tuple[AgentLine, ...] = ()
    """The sub-agents the turn delegated to, each a child chat working elsewhere."""
    latest: tuple[str, ...] = ()
    """The compact thread style's view of a turn's progress: the last lines of its intermediate
    texts (the "Now let me look at …" a full-style thread posts one message each for)."""

    @property
    def final(self) -> bool:
        """The turn is over: the card will not change again."""
        return not self.phase.busy


@dataclass(frozen=True)
class Retrying:
    """Coder retries the model call: which attempt, in how long, and why."""

    attempt: int
    delay_ms: int
    error: str


@dataclass(frozen=True)
class RetriesOver:
    """A series of retries ended: the model answered again (``recovered``), Coder gave up
    (``failed``), or the turn ended otherwise (``stopped``)."""

    attempts: int
    outcome: str
    error: str


@dataclass(frozen=True)
class Failed:
    """The failure a turn ended with, as Coder classified it."""

    failure: ChatFailure


@dataclass(frozen=True)
class Answered:
    """A question the agent asked was answered: with ``answer``, by ``user`` (a Slack user id; empty
    when answered elsewhere or before a restart)."""

    answer: str
    user: str = ""


@dataclass(frozen=True)
class Unanswered:
    """Coder stopped waiting for an answer: after ``minutes`` (``timed_out``), or cancelled for
    ``reason`` (a stop)."""

    reason: str
    timed_out: bool
    minutes: int


Closing = Answered | Unanswered
"""How a question (or a client tool's wait) ended."""


@dataclass(frozen=True)
class Asking:
    """Questions the agent asks its person, each with the answers it offers; ``closing`` once over."""

    questions: tuple[Question, ...]
    closing: Closing | None = None


@dataclass(frozen=True)
class ClientTool:
    """A client-executed tool other than a question that the chat waits on (Slack cannot carry it
    out); ``closing`` once over."""

    name: str
    closing: Closing | None = None


Content = Reply | Restarting | Card | Retrying | RetriesOver | Failed | Asking | ClientTool
"""What one block of a thread shows."""


@dataclass(frozen=True)
class Step:
    """One tool call of a turn as a native plan shows it (``unknown`` when the turn ended without its
    result)."""

    id: str
    name: str
    summary: str
    state: str


@dataclass(frozen=True)
class Plan:
    """A turn's status card in parts. The card's text says all of it; a poster that can show steps
    natively shows these instead, and ``head`` (the card's first line) once the card is ``final``."""

    title: str
    """The turn's state in a few plain words (``Working``, ``Starting workspace… 40s``, ``Done``)."""
    steps: tuple[Step, ...]
    head: str
    """The card's first line (Markdown): ``✅ Done · 3 tools · touched `a.py` `` and the like."""
    final: bool
    """The turn is over: nothing more will change."""
