"""Logging setup: text or JSON lines, and a last-line-of-defence filter that masks secrets.

Code never logs tokens on purpose; the filter catches accidents (an exception message that
quoted a header, a library's debug line) before anything reaches the output.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from pathlib import Path

_FIELDS = ("chat_id", "channel", "thread_ts", "event_id")

_CREDENTIALS = re.compile(
    r"(?i)(coder-session-token\W{1,4}|coder_session_token=|authorization\W{1,4}(?:bearer|token)\s+)"
    r"[^\s'\",;&]+"
)
"""Credentials in headers, cookies and query strings, whoever they belong to: linked users' Coder
tokens are not configured secrets, yet a library logging a request at DEBUG would show them."""
_SLACK_TOKENS = re.compile(r"\bxox[a-z]-[\w-]+")
"""Slack tokens by their shape, wherever they appear: the tokens of OAuth installations are no
configured secret, yet slack-sdk logs the bodies of ``oauth.v2.access`` (new tokens) at DEBUG."""


class SecretFilter(logging.Filter):
    """Replaces every configured secret in a record's final message with ``[redacted]``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        exc_text = record.exc_text or ""
        for secret in self._secrets:
            message = message.replace(secret, "[redacted]")
            exc_text = exc_text.replace(secret, "[redacted]")
        message = _SLACK_TOKENS.sub("[redacted]", _CREDENTIALS.sub(r"\1[redacted]", message))
        exc_text = _SLACK_TOKENS.sub("[redacted]", _CREDENTIALS.sub(r"\1[redacted]", exc_text))
        record.msg, record.args, record.exc_text = message, (), exc_text or None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the structured fields the bridge attaches (``chat_id`` …)."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _FIELDS:
            if hasattr(record, name):
                data[name] = getattr(record, name)
        if record.exc_info or record.exc_text:
            data["exception"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        return json.dumps(data, ensure_ascii=False)


def configure(level: str, fmt: str, secrets: Iterable[str] = (), file: Path | None = None) -> None:
    """Route all logging to stderr, or to ``file``, in the chosen format, masking ``secrets``."""
    handler: logging.Handler = logging.FileHandler(file) if file else logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SecretFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
