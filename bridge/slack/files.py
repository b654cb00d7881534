"""Slack file download: host allow-list, size cap, content sniffing.

Files attached to Slack messages are user-supplied URLs, so nothing is fetched from a host outside
``BRIDGE_SLACK_FILE_HOSTS``: redirects are followed by hand, one hop at a time, and a hop to any
other host is refused before a request is made, so the bot token never leaves Slack's hosts. The
body is streamed and abandoned past ``BRIDGE_MAX_FILE_BYTES``. The bridge asks for the bytes as
they are (``Accept-Encoding: identity``): a compressed body inflates in the client, and 199 KiB of
gzip made 142 MiB in one piece before any cap could count it. A host that compresses anyway is
inflated a piece at a time under the same cap; an encoding other than gzip or deflate is refused.
What a file *is* is decided by its bytes (magic numbers for images and PDF, "valid UTF-8 text" and
"JSON parses" for the text types), never by its name or the type Slack or the user declared.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import zlib
from collections.abc import AsyncIterator, Collection, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from bridge.metrics import Metrics
from bridge.relay.limits import SlackLimits
from bridge.relay.ports import FetchedFile, FileRefused, SlackError, SlackFile
from bridge.slack.poster import budgeted_call
from bridge.slack.routing import RoutedClient

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
)
_MARKDOWN = frozenset({"text/markdown", "text/x-markdown"})
_CSV = frozenset({"text/csv", "text/comma-separated-values"})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_NO_ACCESS = "Slack did not let the bot read it (does the app have files:read?)"
_INFLATED = frozenset({"gzip", "x-gzip", "deflate"})
_PIECE = 64 << 10
"""Most bytes one step of inflating makes: what a compressed body can add past the cap."""


def parse_files(raw: Any) -> tuple[SlackFile, ...]:
    """The ``files`` of a Slack message event as ``SlackFile``s; malformed entries are dropped."""
    if not isinstance(raw, list):
        return ()
    files = []
    for item in raw:
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
            continue
        url = item.get("url_private_download") or item.get("url_private") or ""
        mode = str(item.get("mode") or "hosted")
        if item.get("file_access") == "check_file_info":  # a stub, with or without its mode
            mode = "file_access"
        elif item.get("is_external"):
            mode = "external"
        size = item.get("size")
        files.append(
            SlackFile(
                id=item["id"],
                name=str(item.get("name") or item.get("title") or item["id"]),
                url=url if isinstance(url, str) else "",
                size=size if isinstance(size, int) else 0,
                mode=mode,
            )
        )
    return tuple(files)


def _megabytes(size: int) -> str:
    return f"{size / (1 << 20):g} MB"


def sniff(data: bytes, name: str) -> str:
    """The media type ``data`` really is; ``FileRefused`` if it is none the bridge relays.

    Binary types come from magic numbers. Anything else must be valid UTF-8 without NUL bytes to be
    text; then the name tells CSV and Markdown from plain text, and JSON must parse.
    """
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    magic = next((media for prefix, media in _MAGIC if data.startswith(prefix)), None)
    if magic is not None:
        return magic
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise FileRefused("not an image, PDF or text file") from None
    if not text.strip() or "\x00" in text:
        raise FileRefused("empty, or not a text file")
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix == "json":
        try:
            json.loads(text)
        except ValueError:
            raise FileRefused("named .json but not valid JSON") from None
        return "application/json"
    if suffix == "csv":
        return "text/csv"
    if suffix in ("md", "markdown"):
        return "text/markdown"
    return "text/plain"


def _decoded(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body's bytes as sent, inflated a piece at a time when the host compressed it anyway
    (httpx would inflate each chunk whole)."""
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return response.aiter_raw()
    if encoding not in _INFLATED:
        raise FileRefused(f"Slack sent it encoded as {encoding}, which the bridge does not read")
    return inflated(response.aiter_raw())


async def inflated(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """gzip or zlib ``chunks`` inflated in pieces of at most ``_PIECE`` bytes, so whoever counts
    them stops a bomb before it is unpacked."""
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)  # either header
    try:
        async for chunk in chunks:
            pending = chunk
            while pending:
                yield inflater.decompress(pending, _PIECE)
                pending = inflater.unconsumed_tail
        while piece := inflater.decompress(b"", _PIECE):
            yield piece
    except zlib.error:
        raise FileRefused("its compressed body from Slack is broken") from None


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class SlackFileSource:
    """``FileSource`` over httpx: Slack files, with the bot token, from allowed hosts only.

    Plain ``http`` is accepted only for loopback hosts (the simulators); Slack itself is ``https``.
    A stub file object (``file_access: check_file_info``, with or without ``mode: file_access``, as
    Slack Connect channels' events carry) is looked up with ``files.info`` through ``client`` first.
    """

    def __init__(
        self,
        *,
        hosts: Collection[str],
        max_bytes: int,
        timeout: float,
        client: RoutedClient,
        metrics: Metrics,
        limits: SlackLimits,
    ) -> None:
        self._slack = client
        self._metrics = metrics
        self._limits = limits
        self._hosts = frozenset(h.lower() for h in hosts)
        self._max_bytes = max_bytes
        self._timeout = timeout
        self._client = httpx.AsyncClient(follow_redirects=False, timeout=timeout)

    def _allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if host not in self._hosts:
            return False
        return parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(host))

    async def fetch(self, file: SlackFile) -> FetchedFile:
        """Download and check one file; ``FileRefused`` says why it is not relayed."""
        if file.mode == "file_access":
            file = await self._described(file)
        if file.mode == "external":
            raise FileRefused("a link to another service, not a file in Slack")
        if not file.url:
            raise FileRefused("Slack did not give the bot a download link")
        if file.size > self._max_bytes:
            raise FileRefused(f"larger than {_megabytes(self._max_bytes)}")
        try:
            async with asyncio.timeout(self._timeout):
                data = await self._download(file.url)
        except TimeoutError:
            raise FileRefused("the download from Slack timed out") from None
        except httpx.HTTPError as exc:
            log.warning("downloading Slack file %s failed: %s", file.id, type(exc).__name__)
            raise FileRefused("the download from Slack failed") from None
        return FetchedFile(name=file.name, media_type=sniff(data, file.name), data=data)

    async def _described(self, stub: SlackFile) -> SlackFile:
        """The full file object of a stub, from ``files.info``."""
        try:
            response = await budgeted_call(
                self._limits, self._metrics, "files.info", lambda: self._slack.files_info(file=stub.id)
            )
        except SlackError as exc:
            raise FileRefused(f"Slack would not describe it ({exc.code})") from None
        described = parse_files([response.get("file")])
        if not described or described[0].mode == "file_access":
            raise FileRefused("Slack would not describe it")
        return described[0]

    async def _download(self, url: str) -> bytes:
        for _ in range(MAX_REDIRECTS + 1):
            if not self._allowed(url):
                raise FileRefused("its link leads outside Slack's file hosts")
            token = await self._slack.bot_token()  # the workspace's whose message carried the file
            headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": "identity"}
            async with self._client.stream("GET", url, headers=headers) as response:
                if response.status_code in _REDIRECTS:
                    location = response.headers.get("Location", "")
                    if "redir=" in location:  # Slack's sign-in page: the token may not read the file
                        raise FileRefused(_NO_ACCESS)
                    url = urljoin(url, location)
                    continue
                if response.status_code != 200:
                    raise FileRefused(f"Slack answered HTTP {response.status_code}")
                if response.headers.get("Content-Type", "").startswith("text/html"):
                    raise FileRefused(_NO_ACCESS)
                return await self._capped(_decoded(response))
        raise FileRefused("too many redirects")

    async def _capped(self, chunks: AsyncIterator[bytes]) -> bytes:
        body = bytearray()
        async for chunk in chunks:
            body += chunk
            if len(body) > self._max_bytes:
                raise FileRefused(f"larger than {_megabytes(self._max_bytes)}")
        return bytes(body)

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._client.aclose()
