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


@pytest.mark.usefixtures("restore_logging")
def test_credentials_of_anyone_are_masked(capsys: pytest.CaptureFixture[str]) -> None:
    """Tokens in headers, cookies and queries are masked even when they are no configured secret."""
    configure("DEBUG", "text", [])
    log = logging.getLogger("websockets.client")
    log.debug("> Coder-Session-Token: personal-token-1")
    log.debug("headers {'Authorization': 'Bearer xoxp-personal-2'}")
    log.debug("GET /api/v2/chats?coder_session_token=personal-3&x=1")
    log.debug("body: {'access_token': 'xoxb-T1-installed-4', 'refresh_token': 'xoxe-1-refresh-5'}")
    err = capsys.readouterr().err
    for token in ("personal-token-1", "xoxp-personal-2", "personal-3", "installed-4", "refresh-5"):
        assert token not in err
    assert "Coder-Session-Token: [redacted]" in err
