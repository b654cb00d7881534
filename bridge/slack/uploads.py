"""Slack's external file upload, one step a call, each within the workspace's budget.

``files_upload_v2`` of slack-sdk runs all three steps in one call; the relay needs them apart, so a
restart after step one can ask ``files.info`` whether the file reached the thread before it uploads
again (``relay.agent_files``). Step two is a plain POST of the bytes to the URL step one gave (the
URL is its own credential: no token goes with it), as slack-sdk sends it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient

from bridge.metrics import Metrics
from bridge.relay.limits import SlackLimits
from bridge.relay.ports import SlackPermanent, SlackTransient, Upload
from bridge.slack.poster import budgeted_call

_UPLOAD = "files.upload(url)"
"""How step two is named in errors and metrics: it is no Web API method."""


class WebUploads:
    """``FileUploads`` over the Web API and the shared HTTP session."""

    def __init__(
        self, client: AsyncWebClient, http: aiohttp.ClientSession, metrics: Metrics, limits: SlackLimits
    ) -> None:
        self._client = client
        self._http = http
        self._metrics = metrics
        self._limits = limits

    async def begin(self, filename: str, length: int) -> Upload:
        response = await self._call(
            "files.getUploadURLExternal",
            lambda: self._client.files_getUploadURLExternal(filename=filename, length=length),
        )
        return Upload(file_id=str(response["file_id"]), url=str(response["upload_url"]))

    async def send(self, upload: Upload, data: bytes) -> None:
        try:
            async with self._http.post(upload.url, data=data) as response:
                status = response.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self._metrics.slack_calls.labels(_UPLOAD, "network_error").inc()
            raise SlackTransient(type(exc).__name__, _UPLOAD) from None
        code = "ok" if status == 200 else f"http_{status}"
        self._metrics.slack_calls.labels(_UPLOAD, code).inc()
        if status >= 500 or status == 429:
            raise SlackTransient(code, _UPLOAD)
        if status != 200:  # an expired or unknown URL: only a new upload can go on
            raise SlackPermanent(code, _UPLOAD)

    async def share(self, upload: Upload, title: str, channel: str, thread_ts: str) -> None:
        await self._call(
            "files.completeUploadExternal",
            lambda: self._client.files_completeUploadExternal(
                files=[{"id": upload.file_id, "title": title}], channel_id=channel, thread_ts=thread_ts
            ),
        )

    async def shared_in(self, file_id: str, channel: str) -> bool:
        response = await self._call("files.info", lambda: self._client.files_info(file=file_id))
        shares = response.get("file", {}).get("shares", {})
        return any(channel in places for places in shares.values() if isinstance(places, dict))

    async def _call(self, method: str, call: Callable[[], Awaitable[Any]]) -> Any:
        return await budgeted_call(self._limits, self._metrics, method, call)
