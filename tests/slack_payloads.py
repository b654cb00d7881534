"""Real Slack payloads kept in ``tests/fixtures/slack``, each with the public file it was taken from.

A fixture is ``{"source": {"repo", "path", "commit", "note"}, "payload": …}``: the payload as the
source has it, so a parser is tested on what Slack really sends rather than on what we think it does.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

_HERE = Path(__file__).parent / "fixtures" / "slack"


@cache
def _load(name: str) -> dict[str, Any]:
    document = json.loads((_HERE / f"{name}.json").read_text(encoding="utf-8"))
    assert {"repo", "path", "commit"} <= set(document["source"]), f"{name} does not name its source"
    return dict(document["payload"])


def payload(name: str) -> dict[str, Any]:
    """A fresh copy of the payload of ``tests/fixtures/slack/<name>.json``."""
    return copy.deepcopy(_load(name))
