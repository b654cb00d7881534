"""The Slack file downloader against the Slack simulator: access, hosts and the size cap."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bridge.metrics import Metrics
from bridge.relay.limits import SlackLimits
from bridge.relay.ports import FileRefused, SlackFile
from bridge.sim.slack import SlackSim
from bridge.sim.slack_state import DEFAULT_SCOPES, Compression
from bridge.slack.files import SlackFileSource, parse_files
from bridge.slack.routing import RoutedClient
from bridge.slack.workspaces import BotInstall, SingleInstall, WorkspaceKey

PNG = b"\x89PNG\r\n\x1a\n" + bytes(32)


def _source(slack: SlackSim) -> SlackFileSource:
    install = BotInstall(
        WorkspaceKey(None, slack.team_id), slack.bot_token, slack.bot_user_id, slack.bot_id, frozenset()
    )
    client = RoutedClient(SingleInstall(install), default=install, base_url=slack.api_url)
    return SlackFileSource(
        hosts={"127.0.0.1"},
        max_bytes=1024,
        timeout=5.0,
        client=client,
        metrics=Metrics(),
        limits=SlackLimits(),
    )


@pytest.fixture
async def slack() -> AsyncIterator[SlackSim]:
    async with SlackSim() as sim:
        yield sim


@pytest.fixture
async def source(slack: SlackSim) -> AsyncIterator[SlackFileSource]:
    files = _source(slack)
    try:
        yield files
    finally:
        await files.aclose()


def _file(slack: SlackSim, content: bytes, name: str, mimetype: str) -> SlackFile:
    return parse_files([slack.add_file(content, name, mimetype)])[0]


async def test_a_file_is_downloaded_with_its_real_type(slack: SlackSim, source: SlackFileSource) -> None:
    """An allowed file comes back with the bytes and the type the bytes show."""
    fetched = await source.fetch(_file(slack, PNG, "shot.bin", "application/octet-stream"))
    assert (fetched.name, fetched.media_type, fetched.data) == ("shot.bin", "image/png", PNG)


async def test_a_stub_file_is_looked_up_with_files_info(slack: SlackSim, source: SlackFileSource) -> None:
    """A Slack Connect stub (no URLs) is described by files.info, then downloaded as usual."""
    real = _file(slack, PNG, "shared.png", "image/png")
    fetched = await source.fetch(SlackFile(real.id, real.id, "", mode="file_access"))
    assert (fetched.name, fetched.data) == ("shared.png", PNG)
    assert [c.params.get("file") for c in slack.calls_to("files.info")] == [real.id]
    with pytest.raises(FileRefused, match="file_not_found"):
        await source.fetch(SlackFile("F0NONE", "F0NONE", "", mode="file_access"))


async def test_without_files_read_slack_sends_the_sign_in_page_and_that_is_said() -> None:
    """Slack answers a token lacking files:read with a redirect to sign in; the reason names the scope."""
    scopes = [s for s in DEFAULT_SCOPES if s != "files:read"]
    async with SlackSim(scopes=scopes) as slack:
        files = _source(slack)
        try:
            with pytest.raises(FileRefused, match="files:read"):
                await files.fetch(_file(slack, PNG, "a.png", "image/png"))
        finally:
            await files.aclose()


async def test_hosts_outside_the_list_and_external_files_are_never_fetched(source: SlackFileSource) -> None:
    """A URL on another host or scheme, a link to another service and a file without a URL are refused."""
    for file, reason in [
        (SlackFile("F1", "a.png", "http://localhost:9/a.png"), "outside Slack's file hosts"),
        (SlackFile("F2", "a.png", "https://drive.example/a", mode="external"), "another service"),
        (SlackFile("F3", "a.png", "", mode="snippet"), "download link"),
        (SlackFile("F4", "a.png", "ftp://127.0.0.1/a.png"), "outside Slack's file hosts"),
    ]:
        with pytest.raises(FileRefused, match=reason):
            await source.fetch(file)


async def test_a_body_past_the_cap_is_abandoned(slack: SlackSim, source: SlackFileSource) -> None:
    """The cap holds even when the declared size is small: the stream is cut at the limit."""
    file = _file(slack, PNG + bytes(4096), "big.png", "image/png")
    with pytest.raises(FileRefused, match="larger than"):
        await source.fetch(SlackFile(file.id, file.name, file.url, size=1))


async def test_downloads_ask_for_the_bytes_as_stored(slack: SlackSim, source: SlackFileSource) -> None:
    """Downloads ask for ``identity``: a host that compresses when allowed sends the file as it is."""
    file = _file_gzipped(slack, b"hello, agent\n", "accepted")
    fetched = await source.fetch(file)
    assert fetched.data == b"hello, agent\n"
    assert [r.accept_encoding for r in slack.file_requests] == ["identity"]


async def test_a_body_compressed_anyway_is_inflated_under_the_cap(
    slack: SlackSim, source: SlackFileSource
) -> None:
    """A host that compresses whatever it was asked: a small text is read, a bomb is cut at the cap."""
    small = await source.fetch(_file_gzipped(slack, b"still readable\n", "always"))
    assert small.data == b"still readable\n"
    with pytest.raises(FileRefused, match="larger than"):
        await source.fetch(_file_gzipped(slack, bytes(8 << 20), "always"))


def _file_gzipped(slack: SlackSim, content: bytes, gzip: Compression) -> SlackFile:
    return parse_files([slack.add_file(content, "notes.txt", "text/plain", gzip=gzip)])[0]
