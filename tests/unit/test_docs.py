"""The documentation holds together: every relative link and anchor resolves, every setting is documented.

The README is a landing page that links into ``docs/``, and the pages link into each other's sections;
a heading renamed or a page moved would otherwise leave a reader at a dead link that no one notices.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

from pydantic import AliasChoices

from bridge.config import Settings

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,}).*?^ {0,3}\1[`~]*[ \t]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1", re.DOTALL)
HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$", re.MULTILINE)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def prose(text: str) -> str:
    """The text outside code blocks and code spans, where Markdown links and headings live."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: its text in lower case, punctuation dropped (letters, digits,
    marks, ``-`` and ``_`` stay), each space a hyphen."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    kept = (c for c in text.lower() if c in "-_ " or unicodedata.category(c)[0] in "LNM")
    return "".join(kept).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor of a page's headings; a repeated heading gets ``-1``, ``-2``… as on GitHub."""
    seen: Counter[str] = Counter()
    found = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text())):
        slug = github_anchor(heading.replace("`", ""))
        found.add(f"{slug}-{seen[slug]}" if seen[slug] else slug)
        seen[slug] += 1
    return found


def broken_links(page: Path) -> list[str]:
    """The relative links of a page whose file, or whose ``#anchor`` in a Markdown file, is missing."""
    broken = []
    for target in LINK.findall(prose(page.read_text())):
        if SCHEME.match(target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / unquote(path)).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and unquote(anchor) not in anchors(resolved):
            broken.append(f"{target}: no such heading")
    return broken


def test_every_relative_link_and_anchor_in_the_docs_resolves() -> None:
    """Each relative link in the README and docs/*.md names an existing file, and its #anchor a heading
    of that page under GitHub's anchor rules."""
    broken = {page.relative_to(ROOT).as_posix(): broken_links(page) for page in PAGES}
    assert {page: links for page, links in broken.items() if links} == {}


def test_the_readme_links_every_page_of_the_docs() -> None:
    """Every page in docs/ is reachable from the README's links."""
    linked = {
        (ROOT / unquote(target.partition("#")[0])).resolve()
        for target in LINK.findall(prose(PAGES[0].read_text()))
    }
    assert [page.name for page in PAGES[1:] if page.resolve() not in linked] == []


def test_every_setting_is_in_the_configuration_table() -> None:
    """Each environment variable the bridge reads appears as a row of the settings table."""
    table = (ROOT / "docs" / "configuration.md").read_text().split("## Settings", 1)[1].split("\n## ", 1)[0]
    rows = "\n".join(line.split("|")[1] for line in table.splitlines() if line.startswith("| `"))
    names = [
        str(info.validation_alias.choices[0])
        for info in Settings.model_fields.values()
        if isinstance(info.validation_alias, AliasChoices)
    ]
    assert names
    assert [name for name in names if f"`{name}`" not in rows] == []


def test_github_anchors_follow_githubs_rules() -> None:
    """Headings become anchors as GitHub makes them: lower case, punctuation gone, spaces hyphens."""
    assert github_anchor("Native streaming and Agent Sessions") == "native-streaming-and-agent-sessions"
    assert github_anchor("G2 requires_action and action_required (checked 2026-11)") == (
        "g2-requires_action-and-action_required-checked-2026-11"
    )
    assert github_anchor("Slack's agent view") == "slacks-agent-view"
    assert github_anchor("Rename `/coder` — “why”") == "rename-coder--why"
