"""What a read-only look at a Coder server tells of the behaviours that differ between its builds.

``bridge doctor`` shows these; each is found without changing anything on the server, and where
only a change could tell (how a promote is answered) the answer stays "unknown". The readers below
take raw JSON, so a build's quirk (a filter ignored, an error without a kind) is seen as it is.
"""

from __future__ import annotations

import secrets
from typing import Any

from bridge.coder.errors import CoderError
from bridge.coder.rest import RestClient, read_json
from bridge.coder.types import Finding

BUILDINFO = "/api/v2/buildinfo"
PROBE_LABEL = "slack_thread"
"""The label a probe filters by, with a value no chat has (the bridge's own key, a valid one)."""


async def server_version(rest: RestClient) -> str:
    """``GET /api/v2/buildinfo``'s version (the route needs no token); empty if it says none."""
    try:
        body = read_json(await rest.call("facts", "GET", BUILDINFO, idempotent=True))
    except CoderError:
        return ""
    version = body.get("version") if isinstance(body, dict) else None
    return str(version) if version else ""


def probe_filter() -> dict[str, list[str]]:
    """A ``label=`` filter that matches no chat."""
    return {"label": [f"{PROBE_LABEL}:doctor-probe-{secrets.token_hex(4)}"]}


def label_filters(filtered: Any, everything: Any) -> Finding:
    """Whether the chat list honours label filters, from a listing filtered to match nothing and an
    unfiltered one: any chat in the first says no; an empty first and a non-empty second say yes."""
    if isinstance(filtered, list) and filtered:
        return "no"
    if isinstance(everything, list) and everything:
        return "yes"
    return "unknown"


def classified_errors(everything: Any) -> Finding:
    """Whether chats' ``last_error`` carries a ``kind``; "unknown" when no listed chat failed."""
    chats = everything if isinstance(everything, list) else []
    errors = [c.get("last_error") for c in chats if isinstance(c, dict) and c.get("last_error")]
    if not errors:
        return "unknown"
    return "yes" if any(isinstance(e, dict) and e.get("kind") for e in errors) else "no"
