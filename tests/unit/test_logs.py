"""Log output: secrets masked in text and JSON lines."""

from __future__ import annotations

import json
import logging

import pytest

from bridge.logs import configure


@pytest.fixture
def restore_logging() -> object:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    yield None
    root.handlers[:], level = saved
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secrets_are_masked(capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    """A secret in a message, an argument or an exception is replaced by [redacted]."""
    configure("INFO", fmt, ["xoxb-secret-token", "coder-secret-1"])
    log = logging.getLogger("bridge.test")
    log.info("token %s in args", "xoxb-secret-token", extra={"chat_id": "c1"})
    try:
        raise RuntimeError("header Coder-Session-Token: coder-secret-1")
    except RuntimeError:
        log.exception("failed")
    err = capsys.readouterr().err
    assert "xoxb-secret-token" not in err
    assert "coder-secret-1" not in err
    assert err.count("[redacted]") >= 2
    if fmt == "json":
        first = json.loads(err.splitlines()[0])
        assert first["chat_id"] == "c1"
        assert first["level"] == "INFO"
