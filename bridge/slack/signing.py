"""The shape of Slack's signature headers, checked before anything verifies a request.

slack-sdk's ``SignatureVerifier`` (which Bolt uses) reads the timestamp with ``int()`` and compares
the signature as text: a timestamp that is no number raises ``ValueError`` and a signature with
non-ASCII characters ``TypeError``, so Bolt answered such a request, which nobody signed, with a 500
and a logged traceback each time. A request whose headers could not be Slack's gets Bolt's own 401
answer instead, before Bolt or the echo filter sees it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_TIMESTAMP = re.compile(r"[0-9]{1,15}")
_SIGNATURE = re.compile(r"v0=[0-9a-fA-F]{64}")
REFUSAL = {"error": "invalid request"}
"""What Bolt answers (with status 401) to a request that fails verification."""


def well_formed(headers: Mapping[str, str]) -> bool:
    """Whether ``X-Slack-Request-Timestamp`` is a number and ``X-Slack-Signature`` a ``v0=`` hex
    digest (what Slack sends); ``headers`` must look names up case-insensitively."""
    timestamp = headers.get("X-Slack-Request-Timestamp", "")
    signature = headers.get("X-Slack-Signature", "")
    return _TIMESTAMP.fullmatch(timestamp) is not None and _SIGNATURE.fullmatch(signature) is not None
