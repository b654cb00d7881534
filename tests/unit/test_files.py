"""Content sniffing and Slack file objects: a file is what its bytes are, never what it is called."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator, Callable

import pytest

from bridge.relay.ports import FileRefused
from bridge.slack.files import inflated, parse_files, sniff
from tests.slack_payloads import payload


@pytest.mark.parametrize(
    ("data", "name", "media_type"),
    [
        (b"\x89PNG\r\n\x1a\n....", "a.txt", "image/png"),
        (b"\xff\xd8\xff\xe0....", "a.png", "image/jpeg"),
        (b"GIF89a....", "a", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "a.png", "image/webp"),
        (b"%PDF-1.7\n", "a.png", "application/pdf"),
        (b"hello\n", "notes.txt", "text/plain"),
        (b"a,b\n1,2\n", "data.CSV", "text/csv"),
        (b"# Title", "readme.md", "text/markdown"),
        (b'{"k": [1, 2]}', "x.json", "application/json"),
        ("héllo wörld".encode(), "a.py", "text/plain"),
    ],
)
def test_type_comes_from_the_bytes(data: bytes, name: str, media_type: str) -> None:
    """Magic numbers decide binary types; valid UTF-8 text is text, its kind taken from the name."""
    assert sniff(data, name) == media_type


@pytest.mark.parametrize(
    ("data", "name", "reason"),
    [
        (b"\x00\x01\xfe\xff", "a.png", "not an image, PDF or text file"),
        (b"text\x00with nul", "a.txt", "empty, or not a text file"),
        (b"   ", "a.txt", "empty, or not a text file"),
        (b"{nope", "a.json", "named .json but not valid JSON"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "a.svg", None),
    ],
)
def test_what_is_not_relayed_says_why(data: bytes, name: str, reason: str | None) -> None:
    """Binary junk, NUL bytes and broken JSON are refused with a reason; SVG is only text."""
    if reason is None:
        assert sniff(data, name) == "text/plain"
        return
    with pytest.raises(FileRefused, match=reason):
        sniff(data, name)


def test_slack_file_objects_are_read_tolerantly() -> None:
    """The download URL, size and mode are taken; external files are marked; junk entries dropped."""
    files = parse_files(
        [
            {"id": "F1", "name": "a.png", "url_private": "u1", "url_private_download": "d1", "size": 5},
            {"id": "F2", "title": "Doc", "url_private": "u2", "is_external": True},
            {"id": "F3", "mode": "file_access"},
            {"name": "no id"},
            "junk",
        ]
    )
    assert [(f.id, f.name, f.url, f.size, f.mode) for f in files] == [
        ("F1", "a.png", "d1", 5, "hosted"),
        ("F2", "Doc", "u2", 0, "external"),
        ("F3", "F3", "", 0, "file_access"),
    ]
    assert parse_files(None) == ()


async def _pieces(*chunks: bytes) -> list[bytes]:
    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    return [piece async for piece in inflated(body())]


@pytest.mark.parametrize("pack", [gzip.compress, zlib.compress], ids=["gzip", "deflate"])
async def test_a_compressed_bomb_is_unpacked_a_piece_at_a_time(pack: Callable[[bytes], bytes]) -> None:
    """32 MiB packed into one small chunk comes out in pieces of at most 64 KiB, none lost, so a cap
    counting them stops it before it is unpacked."""
    bomb = pack(bytes(32 << 20))
    assert len(bomb) < 64 << 10
    pieces = await _pieces(bomb[:100], bomb[100:])
    assert max(len(p) for p in pieces) <= 64 << 10
    assert sum(len(p) for p in pieces) == 32 << 20


async def test_a_broken_compressed_body_is_refused() -> None:
    """Bytes that claim to be gzip and are not: refused with a reason, not an exception from zlib."""
    with pytest.raises(FileRefused, match="broken"):
        await _pieces(b"\x1f\x8b not gzip at all")


@pytest.mark.parametrize("with_mode", [True, False], ids=["mode-file_access", "no-mode"])
def test_a_slack_connect_stub_is_looked_up_whatever_its_mode(with_mode: bool) -> None:
    """A file that only ``files.info`` describes (``file_access: check_file_info``) is a stub, with or
    without ``mode: file_access`` (slack-web's captured payload has it; Slack's docs show none)."""
    [stub] = payload("file_share_slack_connect")["event"]["files"]
    if not with_mode:
        del stub["mode"]
    [file] = parse_files([stub])
    assert (file.id, file.mode, file.url) == ("F12345678", "file_access", "")
    [described] = parse_files([payload("files_info_file")])
    assert (described.name, described.mode, described.size) == ("namenamename.txt", "snippet", 12)
    assert described.url.endswith("/download/namenamename.txt")
