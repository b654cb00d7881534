"""Pure: what the bridge posts can neither notify a group nor disguise a link, whoever wrote it.

Slack reads control sequences in the text of a message: ``<!channel>``, ``<!here>``,
``<!everyone>`` and ``<!subteam^S…>`` notify a whole channel or group, ``<@U…>`` notifies a person,
``<https://a|label>`` shows ``label`` and opens ``https://a``; Markdown's ``[label](https://a)`` does
the same. The agent writes what a prompt (perhaps an injected one) makes it write, and people write
titles and tasks, so none of that may reach Slack with its sequences live:

- ``defuse`` runs on every text the bridge sends (the poster, the streaming poster, slash command
  answers, session titles): group and channel notifications are shown, not sent, and a link whose
  label looks like another address is shown as its real target. The bridge never means either.
- ``unmention`` runs on text someone else wrote (agent replies, tool calls, titles, reasons, file
  names) before the bridge puts it in a line of its own: a person's mention there is shown, not
  sent. The bridge's own mentions (the requester when the agent is done) are written around it and
  still notify.

A sequence is broken with a word joiner (U+2060) after its ``<``: it reads the same and is no longer
a sequence. Only Slack's own sequences are broken (``<!DOCTYPE`` and ``List<@NonNull T>`` stay as
written), everywhere, since a code span gives no sure protection in every Slack surface; Markdown
links are left alone inside code, where they are not links. A streamed reply in which a sequence
completes is no longer a continuation of what was streamed: the streaming poster then edits it
in place, as for any rewritten text.
"""

from __future__ import annotations

import re
from collections.abc import Callable

JOINER = "\u2060"
"""Word joiner: invisible, and it keeps ``<`` from opening a control sequence."""

_SPECIAL = re.compile(r"<(?=!(?:channel|here|everyone|group|subteam\^|usergroup\^|date\^))", re.IGNORECASE)
"""The ``<`` of a broadcast, a user group mention or a formatted date (``<!date^…>`` may hide a link)."""
_USER = re.compile(r"<(?=@[UW][A-Z0-9])")
_SLACK_LINK = re.compile(r"<([^|<>\s!@#\u2060][^|<>\s]*)\|([^<>\n]*)>")
"""``<target|label>``: any target but the ``!``, ``@`` and ``#`` commands (Slack links a bare host too)."""
_MARKDOWN_LINK = re.compile(
    r"!?\[([^\[\]\n]*)\]\(\s*<?((?:[a-zA-Z][a-zA-Z0-9+.-]*:|www\.)[^\s()<>]*(?:\([^\s()<>]*\)[^\s()<>]*)*)>?"
    r"(?:\s+(?:\"[^\"\n]*\"|'[^'\n]*'))?\s*\)"
)
_URLISH = re.compile(
    r"^(?:[a-z][a-z0-9+.-]*:\S+|www\.\S+"
    r"|(?:[a-z0-9-]+\.)+(?:com|org|net|io|dev|app|ai|co|gov|edu|me|sh|so|xyz|info|cloud|site)(?:[/:?#]\S*)?)$",
    re.IGNORECASE,
)
"""A label that reads as an address: a scheme, ``www.``, or a host under a common top-level domain
(``foo.py`` and ``os.path.join`` are names, not addresses)."""
_DECORATION = "*_~` \t"
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:(?://)?", re.IGNORECASE)
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`).+?(?<!`)\1(?!`)")


def defuse(text: str) -> str:
    """``text`` with no group notification and no link that names another address than its own."""
    text = _SPECIAL.sub("<" + JOINER, text)
    if "|" in text:
        text = _SLACK_LINK.sub(_slack_link, text)
    if "](" in text:
        text = _outside_code(text, lambda prose: _MARKDOWN_LINK.sub(_markdown_link, prose))
    return text


def unmention(text: str) -> str:
    """``text`` with its people's mentions shown, not sent (``<@U…>`` reads as written)."""
    return _USER.sub("<" + JOINER, text)


def quoted(text: str) -> str:
    """Someone else's words in a line of the bridge's own: ``unmention`` then ``defuse``."""
    return defuse(unmention(text))


def _slack_link(match: re.Match[str]) -> str:
    target, label = match.group(1), match.group(2)
    return f"<{target}>" if _misleading(label, target) else match.group(0)


def _markdown_link(match: re.Match[str]) -> str:
    label, target = match.group(1), match.group(2)
    return f"<{target}>" if _misleading(label, target) else match.group(0)


def _misleading(label: str, target: str) -> bool:
    """Whether ``label`` reads as an address other than ``target``."""
    shown = label.strip(_DECORATION)
    return _URLISH.match(shown) is not None and _place(shown) != _place(target)


def _place(address: str) -> str:
    """An address without what does not change where it leads: scheme, ``www.``, a final ``/``, case."""
    host, slash, rest = _SCHEME.sub("", address.strip()).partition("/")
    return (host.lower().removeprefix("www.") + slash + rest).rstrip("/")


def _outside_code(text: str, change: Callable[[str], str]) -> str:
    """``text`` with ``change`` applied to what is not code (fenced blocks, inline code spans)."""
    out: list[str] = []
    fence: str | None = None
    for line in text.splitlines(keepends=True):
        opening = _FENCE.match(line)
        marks = opening.group(1) if opening is not None else ""
        if fence is not None:
            if marks.startswith(fence):  # as long or longer, of the same character
                fence = None
            out.append(line)
            continue
        if marks:
            fence = marks
            out.append(line)
            continue
        at = 0
        for span in _CODE_SPAN.finditer(line):
            out.append(change(line[at : span.start()]))
            out.append(span.group(0))
            at = span.end()
        out.append(change(line[at:]))
    return "".join(out)
