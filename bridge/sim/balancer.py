"""A load balancer on loopback in front of several `bridge serve` replicas, as operators deploy them.

Each Slack delivery goes to the next replica in turn (round robin), so a retry of an event lands on
another replica than its first attempt; a replica that refuses the connection (killed, restarting)
is skipped for that delivery. Headers and body pass through unchanged: the replicas check Slack's
signature themselves.
"""

from __future__ import annotations

import itertools
from types import TracebackType

import aiohttp
from aiohttp import web

_HOP_BY_HOP = frozenset({"host", "content-length", "connection", "transfer-encoding"})
_NOT_PASSED = _HOP_BY_HOP | {"content-type", "date", "server"}


class Balancer:
    """Round-robin HTTP forwarding to ``upstreams`` (event URLs); ``url`` is where Slack delivers."""

    def __init__(self) -> None:
        self.upstreams: list[str] = []
        self.forwarded: dict[str, int] = {}
        """How many deliveries each upstream answered."""
        self._turn = itertools.count()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    async def __aenter__(self) -> Balancer:
        app = web.Application()
        app.router.add_post("/slack/events", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/slack/events"
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        upstreams = list(self.upstreams)
        start = next(self._turn)
        for offset in range(len(upstreams)):
            upstream = upstreams[(start + offset) % len(upstreams)]
            try:
                async with self._session.post(upstream, data=body, headers=headers) as response:
                    answer = await response.read()
                    self.forwarded[upstream] = self.forwarded.get(upstream, 0) + 1
                    passed = {k: v for k, v in response.headers.items() if k.lower() not in _NOT_PASSED}
                    return web.Response(
                        status=response.status,
                        body=answer,
                        headers=passed,
                        content_type=response.content_type,
                    )
            except aiohttp.ClientConnectionError:  # killed or restarting: the next one takes it
                continue
        return web.Response(status=502, text="no replica answered")
