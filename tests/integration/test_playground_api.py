"""The playground's JSON API without a browser: what it refuses, and in whose words.

The page shows a refusal's ``error`` to the person as it is, so each must say what to do; the acts
themselves are tested through the page in ``test_playground``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from bridge.demo import simulation
from bridge.playground.command import GENERATION
from bridge.playground.server import Playground, listen


@pytest.fixture
async def api() -> AsyncIterator[aiohttp.ClientSession]:
    """A client of the playground's server, running on the simulation the command runs."""
    async with simulation(speed=8, generation=GENERATION) as sim:
        playground = Playground(sim, listen(0))
        await playground.start()
        try:
            async with aiohttp.ClientSession(playground.url) as http:
                yield http
        finally:
            await playground.stop()


REFUSALS = [
    ("say", {"user": "U0BOT", "channel": "C0GENERAL", "text": "hi"}, "choose who you are"),
    ("say", {"user": "U0ALICE", "channel": "C0GENERAL", "text": "  "}, "type a message or attach a file"),
    ("say", {"user": "U0ALICE", "channel": "C0GENERAL", "text": "x", "files": ["F0NONE"]}, "attach it again"),
    ("say", {"user": "U0ALICE", "channel": "C0NOPE", "text": "hi"}, "no conversation C0NOPE"),
    ("edit", {"user": "U0ALICE", "channel": "C0GENERAL", "text": "x"}, "ts is missing"),
    ("agent", {"user": "U0ALICE", "agent": "genius"}, "the agent knows no 'genius'; it knows answer,"),
    ("pull_request", {"user": "U0ALICE", "thread_ts": "1.000001"}, "mention the bot first"),
    ("close_view", {"user": "U0ALICE"}, "has no modal open"),
]


async def test_refusals_say_what_to_do(api: aiohttp.ClientSession) -> None:
    """Each act the playground cannot do is answered 400 with words for the person."""
    for act, body, error in REFUSALS:
        async with api.post(f"/api/{act}", json=body) as answer:
            assert answer.status == 400, act
            assert error in (await answer.json())["error"]


async def test_an_upload_is_attached_and_shown_as_sent(api: aiohttp.ClientSession) -> None:
    """An uploaded image goes with the next message; the page gets it back inline, and any other
    file only as a download."""
    uploads = {}
    for name, media_type in (("shot.png", "image/png"), ("page.html", "text/html; charset=utf-8")):
        form = aiohttp.FormData()
        form.add_field("user", "U0ALICE")
        form.add_field("file", b"<b>bytes</b>", filename=name, content_type=media_type)
        async with api.post("/api/upload", data=form) as answer:
            uploads[name] = await answer.json()
    say = {
        "user": "U0ALICE",
        "channel": "C0GENERAL",
        "text": "see these",
        "files": [u["id"] for u in uploads.values()],
    }
    async with api.post("/api/say", json=say) as answer:
        assert answer.status == 200
    async with api.ws_connect("/api/live?user=U0ALICE") as live:
        view = await live.receive_json()
    (sent,) = [m for m in view["messages"]["C0GENERAL"] if m["text"] == "see these"]
    assert [f["mimetype"] for f in sent["files"]] == ["image/png", "text/html"]
    async with api.get(f"/files/{uploads['shot.png']['id']}") as image:
        assert (image.content_type, image.headers.get("Content-Disposition")) == ("image/png", None)
    async with api.get(f"/files/{uploads['page.html']['id']}") as page:
        assert page.headers["Content-Disposition"] == "attachment"
        assert page.headers["X-Content-Type-Options"] == "nosniff"
