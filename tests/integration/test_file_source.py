"""The Slack file downloader against the Slack simulator: access, hosts and the size cap."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bridge.relay.ports import FileRefused, SlackFile
from bridge.sim.slack import SlackSim
from bridge.sim.slack_state import DEFAULT_SCOPES
from bridge.slack.files import SlackFileSource, parse_files

PNG = b"\x89PNG\r\n\x1a\n" + bytes(32)


@pytest.fixture
async def source() -> AsyncIterator[SlackFileSource]:
    files = SlackFileSource("xoxb-sim-bot", hosts={"127.0.0.1"}, max_bytes=1024, timeout=5.0)
    try:
        yield files
    finally:
        await files.aclose()


def _file(slack: SlackSim, content: bytes, name: str, mimetype: str) -> SlackFile:
    return parse_files([slack.add_file(content, name, mimetype)])[0]


async def test_a_file_is_downloaded_with_its_real_type(source: SlackFileSource) -> None:
    """An allowed file comes back with the bytes and the type the bytes show."""
    async with SlackSim() as slack:
        fetched = await source.fetch(_file(slack, PNG, "shot.bin", "application/octet-stream"))
    assert (fetched.name, fetched.media_type, fetched.data) == ("shot.bin", "image/png", PNG)


async def test_without_files_read_slack_sends_the_sign_in_page_and_that_is_said() -> None:
    """Slack answers a token lacking files:read with a redirect to sign in; the reason names the scope."""
    files = SlackFileSource("xoxb-sim-bot", hosts={"127.0.0.1"}, max_bytes=1024, timeout=5.0)
    scopes = [s for s in DEFAULT_SCOPES if s != "files:read"]
    try:
        async with SlackSim(scopes=scopes) as slack:
            with pytest.raises(FileRefused, match="files:read"):
                await files.fetch(_file(slack, PNG, "a.png", "image/png"))
    finally:
        await files.aclose()


async def test_hosts_outside_the_list_and_external_files_are_never_fetched(source: SlackFileSource) -> None:
    """A URL on another host, a link to another service and a stub without a URL are refused."""
    for file, reason in [
        (SlackFile("F1", "a.png", "http://localhost:9/a.png"), "outside Slack's file hosts"),
        (SlackFile("F2", "a.png", "https://drive.example/a", mode="external"), "another service"),
        (SlackFile("F3", "a.png", "", mode="file_access"), "download link"),
        (SlackFile("F4", "a.png", "ftp://127.0.0.1/a.png"), "outside Slack's file hosts"),
    ]:
        with pytest.raises(FileRefused, match=reason):
            await source.fetch(file)


async def test_a_body_past_the_cap_is_abandoned(source: SlackFileSource) -> None:
    """The cap holds even when the declared size is small: the stream is cut at the limit."""
    async with SlackSim() as slack:
        file = _file(slack, PNG + bytes(4096), "big.png", "image/png")
        with pytest.raises(FileRefused, match="larger than"):
            await source.fetch(SlackFile(file.id, file.name, file.url, size=1))
