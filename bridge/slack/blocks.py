"""Pure renderers for the bridge's own lines in a thread (the chat header, notices, diff summary).

What they quote from others (a title, a reason, a tool or file name, a pull request's title) is
``unmention``-ed: a person's mention in it is shown, not sent; the posters defuse the rest.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import StrEnum

from bridge.coder.types import ChatCost, ChatDiff, ChatDiffStatus, ChatPhase, ChatStatus, Question, Usage
from bridge.relay.content import AgentLine, Starting, ToolLine
from bridge.slack.defuse import defuse, unmention


class ButtonAction(StrEnum):
    """The block-action ids of the bridge's buttons (a contract with the Slack app): a click does what
    the matching reaction does (``relay.controls``). They live with the renderers that draw the
    buttons, so the relay and the Slack adapters read them without a relay ⇄ slack cycle."""

    CHAT_STOP = "chat_stop"
    CHAT_ARCHIVE = "chat_archive"
    CHAT_UNARCHIVE = "chat_unarchive"
    CHAT_OPEN = "chat_open"
    """A URL button: Slack opens Coder and still sends the click, which is only acknowledged."""
    QUEUED_SEND_NEXT = "queued_send_next"
    QUEUED_REMOVE = "queued_remove"
    QUESTION_ANSWER = "question_answer"
    """One of the answers the agent offers; its action id ends ``:<n>`` (an answer's place), as the
    ids of a message's buttons must differ."""
    PLAN_APPROVE = "plan_approve"
    PLAN_REVISE = "plan_revise"

    @property
    def names_queued(self) -> bool:
        """Whether the value is ``<chat id>:<queued message id>`` (else it is the chat id alone)."""
        return self in (ButtonAction.QUEUED_SEND_NEXT, ButtonAction.QUEUED_REMOVE)

    @property
    def names_call(self) -> bool:
        """Whether the value is ``<chat id>:<tool call id>``: the question or plan the button answers."""
        return self in (ButtonAction.QUESTION_ANSWER, ButtonAction.PLAN_APPROVE, ButtonAction.PLAN_REVISE)


_PHASE_ICONS = {
    ChatPhase.STARTING: "⏳",
    ChatPhase.WORKING: "⚙️",
    ChatPhase.IDLE: "💤",
    ChatPhase.NEEDS_USER: "✋",
    ChatPhase.DONE: "✅",
    ChatPhase.ERROR: "❌",
    ChatPhase.UNKNOWN: "❔",
}


_STATUS_WORDS = {
    ChatPhase.STARTING: "starting",
    ChatPhase.WORKING: "working",
    ChatPhase.IDLE: "waiting",  # Coder's own word: idle, waiting for the next message
    ChatPhase.NEEDS_USER: "waiting for you",
    ChatPhase.DONE: "completed",
    ChatPhase.ERROR: "error",
}
_NAMED_WORDS = {"interrupting": "stopping"}  # a working phase that is about to end
_REASON_LIMIT = 200
_LATEST_LIMIT = 200


def render_status(status: ChatStatus, *, reason: str = "") -> str:
    """The chat's status in a few words: ``⚙️ working``, ``✋ waiting for you``, ``❌ error: …``.

    A status this bridge does not know keeps Coder's own name, so a newer Coder still reads sensibly.
    """
    words = _NAMED_WORDS.get(status.name) or _STATUS_WORDS.get(status.phase) or status.name or "unknown"
    line = f"{_PHASE_ICONS[status.phase]} {words}"
    if status.phase is ChatPhase.ERROR and reason:
        line += f": {_one_line(reason)}"
    return line


def render_header(*, title: str, url: str, status: ChatStatus | None, reason: str = "") -> str:
    """The bot's first reply: which Coder chat this thread drives, where to open it, and its status."""
    name = _escape_link_text(title) or "Coder chat"
    line = f"Started a Coder chat for this thread: [{name}]({url})"
    if status is not None:
        line += f" · {render_status(status, reason=reason)}"
    return line + "\nReplies in this thread go to the agent."


def render_followed(*, title: str, url: str, by: str | None) -> str:
    """The root of a thread made for a chat started elsewhere: whose wish (a person's ``/coder
    follow``, or the chat's own labels), which chat, and what the thread does from now on."""
    name = _escape_link_text(title) or "Coder chat"
    who = f"<@{by}> follows" if by else "🔗 Following, as its labels ask,"
    return (
        f"{who} the Coder chat [{name}]({url}) here: what the agent does from now on appears in this "
        "thread, and replies in it go to the agent."
    )


def _one_line(text: str, limit: int = _REASON_LIMIT) -> str:
    """Someone else's ``text`` on one line, cut to ``limit`` characters: a reason must not take over
    the thread."""
    flat = " ".join(text.split())
    return unmention(flat if len(flat) <= limit else flat[: limit - 1] + "…")


def render_queued(position: int | None) -> str:
    """Told when Coder queued a follow-up because the agent is busy; kept current with its place."""
    where = f" (#{position})" if position else ""
    return f"📥 Queued{where}: the agent gets this message when it finishes its current turn."


def render_unqueued(*, taken: bool) -> str:
    """What a queued follow-up's notice says once it left the queue."""
    if taken:
        return "📨 The agent took this queued message."
    return "📤 This message is no longer queued."


def render_error(message: str) -> str:
    """An error from Coder, shown in one line."""
    return f"⚠️ {message}"


def render_skipped(skipped: Sequence[tuple[str, str]], *, rest_sent: bool) -> str:
    """Files left out of a message, each with the reason, and whether the rest went through."""
    names = "; ".join(f"`{_code(name)}` ({reason})" for name, reason in skipped)
    tail = " The rest of your message was sent." if rest_sent else ""
    return f"⚠️ Not sent to the agent: {names}.{tail}"


def _escape_link_text(text: str) -> str:
    """Someone else's ``text`` as a link's label (brackets would end it)."""
    return unmention(text.replace("[", "(").replace("]", ")").strip())


_CARD_HEAD = re.compile(r"^(⏳ (Working|Starting)|✅ Done|❌ Failed|✋ Waiting for you)\b")
_SHOWN_CALLS = 5
_STATE_MARKS = {"running": "⏳", "ok": "✓", "error": "✗"}


_AGENT_WORDS = {
    ChatPhase.IDLE: "✅ done",
    ChatPhase.DONE: "✅ done",
    ChatPhase.ERROR: "❌ failed",
    ChatPhase.NEEDS_USER: "✋ waiting for you",
}


def render_agent_line(agent: AgentLine) -> str:
    """``🤖 [title](link) · ⚙️ working``: a sub-agent waiting for nothing is done (its chat idles)."""
    status = agent.status
    words = (
        "⚙️ working" if status is None or status.phase.busy else _AGENT_WORDS.get(status.phase, status.name)
    )
    return f"🤖 [{_escape_link_text(agent.title) or 'sub-agent'}]({agent.url}) · {words}"


def _card_state(phase: ChatPhase, starting: Starting | None) -> tuple[str, str]:
    """The icon and the words a card gives the turn's state."""
    if phase.busy and starting is not None:
        what = "Starting workspace…" if starting.workspace else "Starting…"
        return "⏳", f"{what} {format_elapsed(starting.seconds)}"
    if phase.busy:
        return "⏳", "Working"
    if phase is ChatPhase.ERROR:
        return "❌", "Failed"
    if phase is ChatPhase.NEEDS_USER:
        return "✋", "Waiting for you"
    return "✅", "Done"


def card_title(phase: ChatPhase, starting: Starting | None = None) -> str:
    """The turn's state in plain words, as a card says it (``Working``, ``Done``…) without the rest
    of its first line: the title of a plan that lists the turn's tool calls itself."""
    return _card_state(phase, starting)[1]


def call_state(state: str, phase: ChatPhase) -> str:
    """A tool call's state as a card shows it: one still running when its turn ended is ``unknown``
    (no result came)."""
    return state if phase.busy or state != "running" else "unknown"


def render_card_head(
    calls: int,
    *,
    phase: ChatPhase,
    touched: Sequence[str],
    reason: str = "",
    starting: Starting | None = None,
) -> str:
    """A card's first line: the turn's state, how many tools it called, why it failed, what it touched."""
    icon, words = _card_state(phase, starting)
    head = f"{icon} {words}"
    if calls:
        head += f" · {calls} tool{'s' if calls != 1 else ''}"
    if phase is ChatPhase.ERROR and reason:
        head += f" · {_one_line(reason)}"
    if touched:
        shown = ", ".join(f"`{_code(name)}`" for name in touched[:4])
        more = f" and {len(touched) - 4} more" if len(touched) > 4 else ""
        head += f" · touched {shown}{more}"
    return head


def render_card(
    calls: Sequence[ToolLine],
    *,
    phase: ChatPhase,
    touched: Sequence[str],
    reason: str = "",
    starting: Starting | None = None,
    latest: Sequence[str] = (),
    agents: Sequence[AgentLine] = (),
) -> str:
    """A turn's status card: one compact message per turn, rewritten as tools run, never one per call.

    While the turn is still starting (``starting``) it says so, with the time it has taken, so a
    slow workspace start does not look like a stuck agent. The sub-agents the turn delegated to
    (``agents``) follow its calls, one line each, every one of them (they are few, and each is work
    going on elsewhere). ``latest`` (the compact thread style) are the last lines the agent wrote on
    the way, quoted below them, each on one line.
    """
    lines = [render_card_head(len(calls), phase=phase, touched=touched, reason=reason, starting=starting)]
    hidden = len(calls) - _SHOWN_CALLS
    if hidden > 0:
        lines.append(f"…{hidden} earlier")
    for call in calls[-_SHOWN_CALLS:]:
        summary = f" `{_code(call.summary)}`" if call.summary else ""
        lines.append(f"- {_STATE_MARKS.get(call_state(call.state, phase), '•')} {call.name}{summary}")
    lines.extend(f"- {render_agent_line(agent)}" for agent in agents)
    # Defused before they are cut: a link cut in two would escape the posters' check of its target.
    lines.extend(f"> {_one_line(defuse(line), _LATEST_LIMIT)}" for line in latest)
    return "\n".join(lines)


def is_card(text: str) -> bool:
    """Whether a bot message is a turn's status card."""
    return _CARD_HEAD.match(text) is not None


def format_elapsed(seconds: float) -> str:
    """``40s``, ``1m 10s``, ``1h 5m``: a duration as people read it on a card."""
    total = max(int(seconds), 0)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


RETRY_MARKS = ("⟳ ", "✓ Recovered", "✗ Gave up")
"""How the line about Coder retrying the model begins (tests use it to tell it from replies)."""


def render_retry(attempt: int, delay_ms: int, error: str) -> str:
    """Coder retries a failed model call: which attempt, when, and why (one line, edited in place)."""
    delay = format_elapsed(round(delay_ms / 1000)) if delay_ms >= 1000 else f"{max(delay_ms, 0)} ms"
    line = f"⟳ Retrying (attempt {attempt}) in {delay}"
    return line + (f": {_one_line(error)}" if error.strip() else "")


def render_retry_end(retries: int, *, outcome: str, error: str = "") -> str:
    """The retry line once it is over: the model answered again (``recovered``), Coder gave up
    (``failed``), or the turn ended otherwise, e.g. stopped by a person (``stopped``)."""
    times = f"{retries} retr{'ies' if retries != 1 else 'y'}"
    if outcome == "recovered":
        return f"✓ Recovered after {times}"
    if outcome == "stopped":
        return f"⟳ Stopped retrying after {times}"
    return f"✗ Gave up after {times}" + (f": {_one_line(error)}" if error.strip() else "")


def is_retry_line(text: str) -> bool:
    """Whether a bot message is the retry line of a turn."""
    return text.startswith(RETRY_MARKS)


RESTARTING = "⟳ _Starting this reply over…_"
"""What a reply being streamed shows once Coder voided it (its model call is retried), until the new
attempt's text replaces it in the same message."""

REMOVED_MARK = "🗑️ "


def render_removed() -> str:
    """A reply (or a turn's card) the chat no longer has: an edit in Coder rewrote its history."""
    return f"{REMOVED_MARK}_Removed in Coder: an edit rewrote the chat's history without this._"


def is_removed_line(text: str) -> bool:
    """Whether a bot message is a reply or card a history rewrite removed."""
    return text.startswith(REMOVED_MARK)


_REASONING_LIMIT = 300


def render_reasoning(text: str) -> str:
    """The model's reasoning, when shown at all: one quoted line, trimmed, set apart from the reply."""
    return f"> 💭 _{_one_line(text, _REASONING_LIMIT)}_" if text.strip() else ""


def _code(text: str) -> str:
    """Someone else's ``text`` in a code span (a backtick would end it)."""
    return unmention(text.replace("`", "'"))


_OUTCOME = re.compile(r"^<@[UW][A-Z0-9]+> (✅|❌|🛑|✋) The agent ")


def render_outcome(
    user: str,
    *,
    phase: ChatPhase,
    touched: Sequence[str],
    reason: str = "",
    stopped: bool = False,
    waiting_for: Sequence[str] = (),
    summary: str = "",
) -> str:
    """The one new message that notifies the requester that the agent is done or needs them (edits
    notify nobody). ``summary`` is Coder's own summary of the turn, when it wrote one: it says what
    was done better than the files touched, so it comes first."""
    if phase is ChatPhase.ERROR:
        return f"<@{user}> ❌ The agent stopped with an error" + (f": {unmention(reason)}" if reason else ".")
    if phase is ChatPhase.NEEDS_USER:
        tools = ", ".join(f"`{_code(name)}`" for name in waiting_for)
        return f"<@{user}> ✋ The agent is waiting for you" + (f" ({tools})." if tools else ".")
    said = _summary_line(summary)
    if stopped:
        return f"<@{user}> 🛑 The agent stopped as asked" + (f": {said}" if said else ".")
    files = ", ".join(f"`{_code(name)}`" for name in touched[:4])
    more = f" and {len(touched) - 4} more" if len(touched) > 4 else ""
    done = f"<@{user}> ✅ The agent is done" + (f": {said}" if said else "")
    return done + (f" · touched {files}{more}." if files else "" if said else ".")


def render_usage(usage: Sequence[Usage], cost: ChatCost | None) -> str:
    """One line of what model calls used, as Coder recorded it: tokens in (cached ones included)
    and out over ``usage``, the last call's context against the model's limit, and the chat's
    cost so far where Coder reports one. Empty when Coder recorded nothing."""
    facts = []
    if usage:
        read = sum(_context(u) for u in usage)
        written = sum(u.output_tokens or 0 for u in usage)
        facts.append(f"{_tokens(read)} tokens in · {_tokens(written)} out")
        last = usage[-1]
        if last.context_limit:
            share = round(100 * _context(last) / last.context_limit)
            facts.append(f"context {_tokens(_context(last))} of {_tokens(last.context_limit)} ({share}%)")
    if cost is not None and cost.request_count:
        dollars = cost.total_cost_micros / 1_000_000
        spent = f"${dollars:,.2f}" if dollars >= 0.01 or not dollars else f"${dollars:.4f}"
        spent = "<$0.0001" if spent == "$0.0000" else spent
        unpriced = f", {cost.unpriced_request_count} call(s) unpriced" if cost.unpriced_request_count else ""
        facts.append(f"{spent} so far{unpriced}")
    return "🪙 " + " · ".join(facts) if facts else ""


def _context(usage: Usage) -> int:
    """The tokens a call read: its input, cached or not, which is what fills the context window."""
    return (usage.input_tokens or 0) + (usage.cache_read_tokens or 0) + (usage.cache_creation_tokens or 0)


def _tokens(count: int) -> str:
    """A token count as people read them: 950, 12.3k, 200k, 1.2M."""
    for size, unit in ((1_000_000, "M"), (1_000, "k")):
        if count >= size:
            return f"{count / size:.1f}".removesuffix(".0") + unit
    return str(count)


def render_file_linked(name: str, reason: str, url: str) -> str:
    """The line that stands for a file the agent attached that the bridge did not post into the
    thread: what it is, why not, and where a person signed in to Coder opens it."""
    line = f"📎 `{_code(name or 'file')}` is not posted here: {unmention(reason)}."
    return f"{line} [Open it in Coder]({url})" if url else line


def format_bytes(size: int) -> str:
    """A file size as people read it: 900 B, 12.5 KB, 3.2 MB (powers of 1,024)."""
    value, unit = float(size), "B"
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            break
        value /= 1024
    return f"{size} B" if unit == "B" else f"{value:.1f}".removesuffix(".0") + f" {unit}"


SUMMARY_LIMIT = 300
"""Characters of Coder's turn summary the completion line shows (Coder caps nothing for us)."""


def _summary_line(summary: str) -> str:
    """Coder's summary on one line, cut to ``SUMMARY_LIMIT``; a person's mention in it is shown."""
    line = " ".join(summary.split())
    if len(line) > SUMMARY_LIMIT:
        line = line[: SUMMARY_LIMIT - 1].rstrip() + "…"
    return unmention(line)


def is_outcome(text: str) -> bool:
    """Whether a bot message is the end-of-work notice."""
    return _OUTCOME.match(text) is not None


_PR_STATES = {"draft": "📝", "open": "🟢", "merged": "🟣", "closed": "🔴"}
_SHOWN_FILES = 5
DIFF_MARK = "🔀 "
"""How the diff summary begins (tests and tools use it to find it in a thread)."""


def render_diff_summary(status: ChatDiffStatus | None, diff: ChatDiff | None) -> str | None:
    """The thread's one summary of the agent's changes: PR title, link and state, line counts, files.

    ``status`` is what Coder tracks for the chat (3.7), ``diff`` what ``GET /diff`` resolved (3.8);
    either may be missing. ``None`` while there is nothing to show: no PR, branch or changed file.
    """
    files = diff.files if diff is not None else ()
    url = (status.url if status is not None else "") or (diff.pull_request_url if diff is not None else "")
    head = _pull_request_line(status, url) or _branch_line(status, diff, url)
    if head is None and not files:
        return None
    additions = status.additions if status is not None else 0
    deletions = status.deletions if status is not None else 0
    if not (additions or deletions):
        additions, deletions = sum(f.additions for f in files), sum(f.deletions for f in files)
    count = max(status.changed_files if status is not None else 0, len(files))
    lines = [head or f"{DIFF_MARK}Changes"]
    lines.append(f"+{additions} / −{deletions} · {count} file{'s' if count != 1 else ''} changed")
    for change in files[:_SHOWN_FILES]:
        lines.append(f"- `{_code(change.path)}` (+{change.additions} −{change.deletions})")
    if count > _SHOWN_FILES and files:
        lines.append(f"and {count - min(len(files), _SHOWN_FILES)} more")
    return "\n".join(lines)


def is_diff_summary(text: str) -> bool:
    """Whether a bot message is the thread's diff summary."""
    return text.startswith(DIFF_MARK)


def _pull_request_line(status: ChatDiffStatus | None, url: str) -> str | None:
    """``🔀 [title](url) · 🟢 open`` once Coder knows of a pull request, else ``None``."""
    if status is None or not (status.pull_request_state or status.pull_request_title or status.pr_number):
        return None
    name = _escape_link_text(status.pull_request_title)
    if status.pr_number:
        name = f"#{status.pr_number} {name}".strip()
    name = name or "Pull request"
    line = f"{DIFF_MARK}[{name}]({url})" if url else f"{DIFF_MARK}{name}"
    state = pull_request_state(status)
    if state:
        line += f" · {state}"
    if status.changes_requested:
        line += " · ✋ changes requested"
    return line


def pull_request_state(status: ChatDiffStatus) -> str:
    """The pull request's state with its icon (``🟢 open``, ``📝 draft``…); "" while Coder knows none."""
    state = status.pull_request_state.lower()
    if status.pull_request_draft and state in ("", "open"):
        state = "draft"
    return f"{_PR_STATES.get(state, '⚪')} {state}" if state else ""


def _branch_line(status: ChatDiffStatus | None, diff: ChatDiff | None, url: str) -> str | None:
    """``🔀 Branch fix`` (linked) while there is a branch but no pull request, else ``None``."""
    branch = (status.head_branch if status is not None else "") or (diff.branch if diff is not None else "")
    if not branch and not url:
        return None
    name = _escape_link_text(branch) or "the agent's branch"
    return f"{DIFF_MARK}Branch [{name}]({url})" if url else f"{DIFF_MARK}Branch {name}"


QUESTION_MARK = "❓ "
"""How a question the agent asks begins (tests and tools use it to find it in a thread)."""


def render_question(questions: Sequence[Question], *, closing: str = "") -> str:
    """The questions the agent asks, each with the answers it offers, and how to answer: a click on
    an answer's button (one question with answers offered) or a reply in the thread. ``closing``
    replaces that line once the question is over (``render_answered``, ``render_unanswered``)."""
    lines: list[str] = []
    for question in questions:
        head = f"*{_one_line(question.header)}* · " if question.header else ""
        lines.append(f"{QUESTION_MARK}{head}{unmention(question.text)}")
        for option in question.options:
            about = f" — {_one_line(option.description)}" if option.description else ""
            lines.append(f"• *{_one_line(option.label)}*{about}")
    if closing:
        lines.append(closing)
    elif len(questions) == 1 and questions[0].options:
        lines.append("_Click an answer, or reply in this thread to answer in your own words._")
    else:
        lines.append("_Reply in this thread to answer; your reply goes to the agent as the answer._")
    return "\n".join(lines)


def render_answered(answer: str, user: str = "") -> str:
    """Who answered the agent's question, and what (``user`` unknown: answered elsewhere or before a
    restart)."""
    who = f"<@{user}> answered" if user else "Answered"
    return f"✅ {who}: *{_one_line(answer)}*"


def render_unanswered(reason: str, *, timed_out: bool, minutes: int) -> str:
    """A question (or a client tool's call) Coder stopped waiting on: it gave up after ``minutes``, or
    something else cancelled it (a stop), with Coder's ``reason``."""
    if timed_out:
        return (
            f"⌛ _Coder stopped waiting for an answer after {minutes} minutes; "
            "the agent went on without one._"
        )
    return f"✖️ _Not answered: {_one_line(reason)}_" if reason.strip() else "✖️ _Not answered._"


CLIENT_TOOL_MARK = "✋ The agent waits for `"


def is_question(text: str) -> bool:
    """Whether a bot message is a question the agent asks (or a client tool it waits on)."""
    return text.startswith((QUESTION_MARK, CLIENT_TOOL_MARK))


def render_client_tool(name: str, *, closing: str = "") -> str:
    """A client-executed tool other than a question that the agent waits on: Slack cannot carry it
    out, so the person is told what they can do instead."""
    head = (
        f"{CLIENT_TOOL_MARK}{_code(name)}`, a tool that a Coder client carries out, which this "
        "Slack app cannot."
    )
    what = closing or (
        "_Reply in this thread to let the agent go on without it (your reply goes to the agent), "
        "or open the chat in Coder to answer it there; 🛑 stops the agent._"
    )
    return f"{head}\n{what}"


PLAN_MARK = "📋 "
"""How a plan the agent proposes begins (tests and tools use it to find it in a thread)."""
_PLAN_LIMIT = 2800
_LIST_ITEM = re.compile(r"^(\s*)(?:[-*+]\s+(?:\[[ xX]\]\s+)?|\d+[.)]\s+)(.*)$")
_HEADING = re.compile(r"^#{1,6}\s+(.*)$")


def render_plan_mode(taken: bool, version: str) -> str:
    """Said under the header of a chat started in plan mode: what it means, or that this Coder did not
    take it (a build without plan mode reads the request and ignores it) and which Coder has it."""
    if taken:
        return (
            "📝 Plan mode: the agent looks around and proposes a plan, changing nothing; "
            "approve the plan to have it implemented."
        )
    return render_error(
        f"This Coder did not take plan mode (it comes with {version}): the agent works on the task directly."
    )


def render_plan(markdown: str, *, closing: str = "") -> str:
    """The agent's plan as a checklist: each list item a box to tick, headings in bold, other lines as
    written; cut (with word that the rest is in Coder) where it would fill more than a message.
    ``closing`` replaces the line on what to do once the plan was approved."""
    lines = [f"{PLAN_MARK}*{PLAN_TITLE}*"]
    size = 0
    for line in markdown.strip().splitlines():
        item, heading = _LIST_ITEM.match(line), _HEADING.match(line.strip())
        if item:
            shown = f"{'    ' * (len(item.group(1)) // 2)}☐ {item.group(2).strip()}"
        elif heading:
            shown = f"*{heading.group(1).strip()}*"
        else:
            shown = line.rstrip()
        size += len(shown) + 1
        if size > _PLAN_LIMIT:
            lines.append("…_the rest of the plan is in Coder._")
            break
        lines.append(unmention(shown))
    lines.append(
        closing or "_*Approve* to have the agent implement it, or *Revise* to tell it what to change._"
    )
    return "\n".join(lines)


PLAN_TITLE = "The agent's plan"
PLAN_ASK = "_*Approve* to have the agent implement it, or *Revise* to tell it what to change._"


def plan_items(markdown: str) -> list[str]:
    """The steps of a plan: its list items, nested ones included, in order (for a poster that shows
    them as tasks)."""
    items = (_LIST_ITEM.match(line) for line in markdown.splitlines())
    return [unmention(item.group(2).strip()) for item in items if item and item.group(2).strip()]


def is_plan(text: str) -> bool:
    """Whether a bot message is a plan the agent proposed."""
    return text.startswith(PLAN_MARK)
