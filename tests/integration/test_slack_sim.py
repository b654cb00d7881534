"""The Slack simulator against Slack's own SDK over real loopback sockets.

Web API calls go through slack-sdk's ``AsyncWebClient`` (so the SDK's wire format — JSON bodies,
query-string POSTs, GETs — is what the simulator must understand), HTTP deliveries land on a tiny
aiohttp app that checks them with slack-sdk's ``SignatureVerifier``, and Socket Mode is exercised with
both a raw WebSocket and slack-sdk's ``SocketModeClient``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from aiohttp import web
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from bridge.sim.slack import SlackSim
from bridge.sim.slack_limits import TIER_3, Limit, RateLimits, format_retry_after

BUTTONS = [
    {
        "type": "actions",
        "block_id": "controls",
        "elements": [
            {
                "type": "button",
                "action_id": "agent_stop",
                "text": {"type": "plain_text", "text": "Stop"},
                "value": "chat_7f3a",
                "style": "danger",
            }
        ],
    }
]


@dataclass
class Received:
    """One request the receiver got."""

    headers: dict[str, str]
    body: bytes
    valid: bool

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class Receiver:
    """Stands in for the app's /slack/events: verifies signatures, answers as scripted."""

    verifier: SignatureVerifier
    url: str = ""
    requests: list[Received] = field(default_factory=list)
    # Scripted answers (status, delay, body, headers) for the next requests; then 200.
    script: deque[tuple[int, float, str, dict[str, str]]] = field(default_factory=deque)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        valid = self.verifier.is_valid_request(body, dict(request.headers))
        self.requests.append(Received(dict(request.headers), body, valid))
        status, delay, text, headers = self.script.popleft() if self.script else (200, 0.0, "", {})
        if delay:
            await asyncio.sleep(delay)  # the app being slow, not the test waiting
        return web.Response(status=status, text=text, headers=headers, content_type="application/json")

    def events(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.requests if r.headers.get("Content-Type") == "application/json"]


@pytest.fixture
async def sim() -> AsyncIterator[SlackSim]:
    """A simulator whose minute lasts 0.6 s and whose event retries follow within 10 ms."""
    async with SlackSim(time_scale=0.01, ack_timeout=0.3) as sim:
        sim.retry_delays = (0.0, 1.0, 1.0)
        yield sim


@pytest.fixture
def client(sim: SlackSim) -> AsyncWebClient:
    return AsyncWebClient(token=sim.bot_token, base_url=sim.api_url)


@pytest.fixture
async def receiver(sim: SlackSim) -> AsyncIterator[Receiver]:
    """An app endpoint on port 0 that the simulator delivers to over HTTP."""
    receiver = Receiver(SignatureVerifier(sim.signing_secret))
    app = web.Application()
    app.router.add_post("/slack/events", receiver.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver.url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    sim.event_url = receiver.url
    yield receiver
    await runner.cleanup()


async def api_error(call: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        await call
    return caught.value


async def test_post_update_react_and_render_thread(sim: SlackSim, client: AsyncWebClient) -> None:
    """Bot replies, edits and reactions land in the thread and render as a transcript."""
    root = await sim.user_says(sim.alice, sim.general, f"<@{sim.bot_user_id}> fix the flaky test")
    posted = await client.chat_postMessage(channel=sim.general, thread_ts=root, text="Working on it")
    assert posted["message"]["bot_id"] == sim.bot_id
    assert posted["message"]["parent_user_id"] == sim.alice
    await client.chat_update(channel=sim.general, ts=posted["ts"], text="Done: fixed")
    await client.reactions_add(channel=sim.general, timestamp=root, name="eyes")
    await sim.user_says(sim.bob, sim.general, "thanks!", thread_ts=posted["ts"])  # reply-to-reply joins root

    thread = sim.thread(sim.general, root)
    assert [m.visible_text for m in thread] == [
        f"<@{sim.bot_user_id}> fix the flaky test",
        "Done: fixed",
        "thanks!",
    ]
    assert thread[1].edited
    assert thread[0].reactions == {"eyes": [sim.bot_user_id]}
    assert sim.render_thread(sim.general, root).splitlines() == [
        "alice: <@U0BOT> fix the flaky test  [:eyes: bot]",
        "bot: Done: fixed  [edited]",
        "bob: thanks!",
    ]
    replies = await client.conversations_replies(channel=sim.general, ts=root)
    assert [m["ts"] for m in replies["messages"]] == [m.ts for m in thread]
    assert replies["messages"][0]["reply_count"] == 2
    assert replies["messages"][0]["reply_users"] == [sim.bot_user_id, sim.bob]
    permalink = await client.chat_getPermalink(channel=sim.general, message_ts=posted["ts"])
    assert permalink["permalink"].endswith(
        f"p{posted['ts'].replace('.', '')}?thread_ts={root}&cid={sim.general}"
    )


async def test_history_lists_top_level_messages_newest_first(sim: SlackSim, client: AsyncWebClient) -> None:
    """conversations.history: a channel's top-level messages newest first (a thread as its root),
    paged, bounded by ``oldest``, metadata only when asked for; a channel the bot is not in is
    refused. A post whose answer is lost (an applied fault) is there all the same."""
    sim.rate_limits_enabled = False
    first = await sim.user_says(sim.alice, sim.general, "first")
    tag = {"event_type": "coder_bridge_root", "event_payload": {"chat_id": "c1"}}
    sim.fail_next("chat.postMessage", error="service_unavailable", status=503, applied=True)
    lost = await api_error(client.chat_postMessage(channel=sim.general, text="root", metadata=tag))
    assert lost.response.status_code == 503
    await client.chat_postMessage(channel=sim.general, thread_ts=first, text="a reply")
    await sim.user_says(sim.alice, sim.general, "last")
    page = await client.conversations_history(channel=sim.general, limit=2, include_all_metadata=True)
    assert [m["text"] for m in page["messages"]] == ["last", "root"]
    assert page["messages"][1]["metadata"] == tag
    assert page["has_more"] is True
    rest = await client.conversations_history(
        channel=sim.general, cursor=page["response_metadata"]["next_cursor"]
    )
    assert [m["text"] for m in rest["messages"]] == ["first"]
    assert rest["messages"][0]["reply_count"] == 1
    recent = await client.conversations_history(channel=sim.general, oldest=first)  # after it
    assert [m["text"] for m in recent["messages"]] == ["last", "root"]
    assert all("metadata" not in m for m in recent["messages"])
    sim.add_channel("C0QUIET", "quiet", members=(sim.alice,))
    refused = await api_error(client.conversations_history(channel="C0QUIET"))
    assert refused.response["error"] == "not_in_channel"


async def test_ts_format_is_strictly_increasing(sim: SlackSim, client: AsyncWebClient) -> None:
    """Message ts values are "{unix}.{6 digits}" and strictly increase."""
    sim.rate_limits_enabled = False
    stamps = [(await client.chat_postMessage(channel=sim.general, text=str(i)))["ts"] for i in range(20)]
    assert all(re.fullmatch(r"\d{10}\.\d{6}", ts) for ts in stamps)
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == len(stamps)


async def test_markdown_text_is_the_visible_text(sim: SlackSim, client: AsyncWebClient) -> None:
    """markdown_text is stored verbatim as the visible text and obeys its exclusivity and length rules."""
    sim.rate_limits_enabled = False
    posted = await client.chat_postMessage(channel=sim.general, markdown_text="**bold** and `code`")
    message = sim.message(sim.general, posted["ts"])
    assert message is not None
    assert message.visible_text == "**bold** and `code`"
    assert posted["message"]["text"] == "**bold** and `code`"
    conflict = await api_error(client.chat_postMessage(channel=sim.general, text="x", markdown_text="y"))
    assert conflict.response["error"] == "markdown_text_conflict"
    too_long = await api_error(client.chat_postMessage(channel=sim.general, markdown_text="x" * 12_001))
    assert too_long.response["error"] == "msg_too_long"
    with pytest.warns(UserWarning, match="text"):  # the SDK itself warns about a post without text
        empty = await api_error(client.chat_postMessage(channel=sim.general))
    assert empty.response["error"] == "no_text"


async def test_web_api_errors_are_http_200(sim: SlackSim, client: AsyncWebClient) -> None:
    """Slack's errors come back as HTTP 200 with ok=false and the documented codes."""
    alice_ts = await sim.user_says(sim.alice, sim.general, "hello")
    sim.add_channel("C0OLD", "old", is_archived=True)
    cases = {
        "channel_not_found": client.chat_postMessage(channel="C0NOPE", text="x"),
        "not_in_channel": client.chat_postMessage(channel=sim.random, text="x"),
        "is_archived": client.chat_postMessage(channel="C0OLD", text="x"),
        "cant_update_message": client.chat_update(channel=sim.general, ts=alice_ts, text="x"),
        "message_not_found": client.chat_delete(channel=sim.general, ts="1.000001"),
        "no_reaction": client.reactions_remove(channel=sim.general, timestamp=alice_ts, name="eyes"),
        "user_not_found": client.users_info(user="U0NOBODY"),
        "unknown_method": client.api_call("chat.teleport"),
        "invalid_auth": AsyncWebClient(token="xoxb-wrong", base_url=sim.api_url).auth_test(),
        "not_authed": AsyncWebClient(base_url=sim.api_url).auth_test(),
    }
    for expected, call in cases.items():
        error = await api_error(call)
        assert (error.response.status_code, error.response["error"]) == (200, expected)
    await client.reactions_add(channel=sim.general, timestamp=alice_ts, name="eyes")
    again = await api_error(client.reactions_add(channel=sim.general, timestamp=alice_ts, name="eyes"))
    assert again.response["error"] == "already_reacted"
    assert [c.error for c in sim.calls_to("reactions.add")] == [None, "already_reacted"]


def _table(rows: int, cells: int = 2, text: str = "x") -> dict[str, Any]:
    return {
        "type": "table",
        "rows": [[{"type": "raw_text", "text": text} for _ in range(cells)] for _ in range(rows)],
        "column_settings": [{"align": "right", "is_wrapped": True}],
    }


async def test_table_blocks_are_checked_as_slack_does(sim: SlackSim, client: AsyncWebClient) -> None:
    """A table block within the table limits is kept; one over them, or a second table in the
    message, is ``invalid_blocks`` with Slack's reason and where it is."""
    sim.rate_limits = RateLimits(post_message_per_channel=Limit(per_minute=60, burst=10))
    prose = {"type": "markdown", "text": "Numbers:"}
    posted = await client.chat_postMessage(channel=sim.general, text="t", blocks=[prose, _table(100, 20)])
    assert sim.workspace.message(sim.general, posted["ts"]).blocks[1]["type"] == "table"
    cases = {
        "only_one_table_allowed [json-pointer:/blocks/2]": [prose, _table(2), _table(2)],
        "must be less than 101 items [json-pointer:/blocks/0/rows]": [_table(101)],
        "must be less than 21 items [json-pointer:/blocks/0/rows/0]": [_table(2, 21)],
        "must be a raw_text or rich_text element with text [json-pointer:/blocks/0/rows/0/0]": [
            _table(2, 1, "")
        ],
        "at most 10000 characters in total [json-pointer:/blocks/0/rows]": [_table(2, 1, "x" * 5001)],
        "must be a valid enum value [json-pointer:/blocks/0/column_settings/0/align]": [
            _table(1) | {"column_settings": [{"align": "middle"}]}
        ],
    }
    for reason, blocks in cases.items():
        error = await api_error(client.chat_postMessage(channel=sim.general, text="t", blocks=blocks))
        assert error.response["error"] == "invalid_blocks"
        (message,) = error.response["response_metadata"]["messages"]
        assert message.startswith("[ERROR] ")
        assert message.endswith(reason)


async def test_token_from_header_or_form_field_only(sim: SlackSim) -> None:
    """A form post may carry the token as a field; inside a JSON body it is ignored."""
    async with aiohttp.ClientSession() as http:
        form = {"token": sim.bot_token, "channel": sim.general, "text": "via form"}
        async with http.post(sim.api_url + "chat.postMessage", data=form) as response:
            assert (await response.json())["ok"] is True
        async with http.post(sim.api_url + "chat.postMessage", json=form) as response:
            assert (await response.json())["error"] == "not_authed"


async def test_missing_scope_names_needed_and_provided() -> None:
    """A method whose scope was not granted fails with missing_scope, needed and provided."""
    async with SlackSim(scopes=["chat:write", "channels:history"]) as sim:
        client = AsyncWebClient(token=sim.bot_token, base_url=sim.api_url)
        ts = (await client.chat_postMessage(channel=sim.general, text="hi"))["ts"]
        error = await api_error(client.reactions_add(channel=sim.general, timestamp=ts, name="eyes"))
        assert error.response.data == {
            "ok": False,
            "error": "missing_scope",
            "needed": "reactions:write",
            "provided": "chat:write,channels:history",
        }
        im = await api_error(client.conversations_replies(channel=sim.alice_dm, ts=ts))
        assert im.response["needed"] == "im:history"
        auth = await client.auth_test()
        assert auth.headers["x-oauth-scopes"] == "chat:write,channels:history"


async def test_rate_limit_answers_429_with_scaled_retry_after(sim: SlackSim, client: AsyncWebClient) -> None:
    """Over budget a call gets 429 + Retry-After (decimal when scaled); after waiting it succeeds."""
    assert sim.rate_limits.methods["chat.update"] == TIER_3
    sim.rate_limits = RateLimits(methods={"chat.update": Limit(per_minute=6, burst=2)})
    ts = (await client.chat_postMessage(channel=sim.general, text="v0"))["ts"]
    for version in ("v1", "v2"):
        await client.chat_update(channel=sim.general, ts=ts, text=version)
    limited = await api_error(client.chat_update(channel=sim.general, ts=ts, text="v3"))
    assert limited.response.status_code == 429
    assert limited.response.data == {"ok": False, "error": "ratelimited"}
    retry_after = float(limited.response.headers["Retry-After"])
    assert 0 < retry_after <= 0.1  # one token per 0.1 s in a 0.6 s "minute"
    await asyncio.sleep(retry_after)  # honouring Retry-After is the behaviour under test
    await client.chat_update(channel=sim.general, ts=ts, text="v3")
    assert sim.ratelimited_count == 1
    message = sim.message(sim.general, ts)
    assert message is not None
    assert message.text == "v3"


async def test_post_message_is_limited_per_channel() -> None:
    """chat.postMessage allows a short burst per channel, then 429 with whole-second Retry-After."""
    async with SlackSim() as sim:
        client = AsyncWebClient(token=sim.bot_token, base_url=sim.api_url)
        for i in range(3):
            await client.chat_postMessage(channel=sim.general, text=str(i))
        limited = await api_error(client.chat_postMessage(channel=sim.general, text="3"))
        assert (limited.response.status_code, limited.response.headers["Retry-After"]) == (429, "1")
        await client.chat_postMessage(channel=sim.alice_dm, text="another channel has its own budget")
        assert sim.ratelimited_count == 1
    assert format_retry_after(0.2, time_scale=1.0) == "1"
    assert format_retry_after(0.0123, time_scale=0.01) == "0.013"
    assert format_retry_after(2.5, time_scale=0.5) == "2.5"


async def test_fail_next_injects_errors(sim: SlackSim, client: AsyncWebClient) -> None:
    """fail_next makes the next calls fail with the chosen status, error and Retry-After."""
    sim.fail_next("chat.postMessage", error="ratelimited", status=429, retry_after=2)
    sim.fail_next("chat.postMessage", count=2)
    first = await api_error(client.chat_postMessage(channel=sim.general, text="x"))
    assert (first.response.status_code, first.response.headers["Retry-After"]) == (429, "2")
    for _ in range(2):
        error = await api_error(client.chat_postMessage(channel=sim.general, text="x"))
        assert (error.response.status_code, error.response["error"]) == (200, "internal_error")
    await client.chat_postMessage(channel=sim.general, text="x")
    assert [c.ok for c in sim.calls_to("chat.postMessage")] == [False, False, False, True]
    assert sim.ratelimited_count == 1


async def test_mention_is_delivered_twice_signed(sim: SlackSim, receiver: Receiver) -> None:
    """A channel mention arrives as message and app_mention, separately signed, with Slack's wrapper."""
    ts = await sim.user_says(sim.alice, sim.general, f"<@{sim.bot_user_id}> hi")
    assert all(r.valid for r in receiver.requests)
    bodies = {body["event"]["type"]: body for body in receiver.events()}
    assert set(bodies) == {"message", "app_mention"}
    assert bodies["message"]["event_id"] != bodies["app_mention"]["event_id"]
    body = bodies["app_mention"]
    assert body["type"] == "event_callback"
    assert body["team_id"] == sim.team_id
    assert body["api_app_id"] == sim.app_id
    assert isinstance(body["event_time"], int)
    assert body["authorizations"] == [
        {
            "enterprise_id": None,
            "team_id": sim.team_id,
            "user_id": sim.bot_user_id,
            "is_bot": True,
            "is_enterprise_install": False,
        }
    ]
    assert body["event_context"].startswith("4-")
    assert body["event"]["ts"] == ts
    assert body["event"]["blocks"][0]["type"] == "rich_text"
    assert bodies["message"]["event"]["channel_type"] == "channel"
    assert all(d.acked and d.transport == "http" for d in sim.deliveries)


async def test_only_subscribed_visible_events_are_delivered(sim: SlackSim, receiver: Receiver) -> None:
    """No events from channels without the bot; a DM mention is message.im only, no app_mention."""
    await sim.user_says(sim.alice, sim.random, f"<@{sim.bot_user_id}> are you here?")
    await sim.user_says(sim.alice, sim.alice_dm, f"<@{sim.bot_user_id}> hi")
    assert [(b["event"]["type"], b["event"]["channel_type"]) for b in receiver.events()] == [
        ("message", "im")
    ]


async def test_failed_delivery_is_retried_with_same_event(sim: SlackSim, receiver: Receiver) -> None:
    """Non-2xx answers are retried with X-Slack-Retry-Num/Reason, the same event_id and body."""
    receiver.script.extend([(500, 0.0, "", {}), (503, 0.0, "", {})])
    await sim.user_says(sim.alice, sim.alice_dm, "hello")
    assert [r.headers.get("X-Slack-Retry-Num") for r in receiver.requests] == [None, "1", "2"]
    assert [r.headers.get("X-Slack-Retry-Reason") for r in receiver.requests] == [
        None,
        "http_error",
        "http_error",
    ]
    assert len({r.body for r in receiver.requests}) == 1
    assert [(d.attempt, d.status, d.acked) for d in sim.deliveries] == [
        (0, 500, False),
        (1, 503, False),
        (2, 200, True),
    ]


async def test_slow_app_gets_http_timeout_retry(sim: SlackSim, receiver: Receiver) -> None:
    """An app that misses ack_timeout gets a retry marked http_timeout."""
    receiver.script.append((200, 1.0, "", {}))
    await sim.user_says(sim.alice, sim.alice_dm, "hello")
    assert [(d.attempt, d.failure, d.acked) for d in sim.deliveries] == [
        (0, "http_timeout", False),
        (1, None, True),
    ]
    assert receiver.requests[1].headers["X-Slack-Retry-Reason"] == "http_timeout"


async def test_retries_stop_after_three_or_on_no_retry(sim: SlackSim, receiver: Receiver) -> None:
    """Slack gives up after three retries, or at once when the app answers X-Slack-No-Retry: 1."""
    receiver.script.extend([(500, 0.0, "", {})] * 4 + [(500, 0.0, "", {"X-Slack-No-Retry": "1"})])
    await sim.user_says(sim.alice, sim.alice_dm, "first")
    await sim.user_says(sim.alice, sim.alice_dm, "second")
    assert [d.attempt for d in sim.deliveries] == [0, 1, 2, 3, 0]
    assert not any(d.acked for d in sim.deliveries)


async def test_replayed_delivery_carries_retry_num(sim: SlackSim, receiver: Receiver) -> None:
    """deliver_event can replay a delivered body as a retry, for duplicate-handling tests."""
    first = await sim.deliver_event({"type": "app_mention", "user": sim.alice, "channel": sim.general})
    replay = await sim.deliver_event(first.payload, wrap=False, retry_num=1)
    assert replay.event_id == first.event_id
    assert receiver.requests[1].headers["X-Slack-Retry-Num"] == "1"
    assert receiver.requests[0].body == receiver.requests[1].body


async def test_bad_signature_and_stale_timestamp_knobs(sim: SlackSim, receiver: Receiver) -> None:
    """Changing the signing secret or the timestamp offset produces requests the verifier rejects."""
    sim.signing_secret = "not-the-app-secret"
    await sim.user_says(sim.alice, sim.alice_dm, "forged")
    sim.signing_secret = receiver.verifier.signing_secret
    sim.request_timestamp_offset = -600
    await sim.user_says(sim.alice, sim.alice_dm, "replayed")
    assert [r.valid for r in receiver.requests] == [False, False]


async def test_bot_messages_are_echoed(sim: SlackSim, client: AsyncWebClient, receiver: Receiver) -> None:
    """The bot's own posts and edits come back as message / message_changed events."""
    posted = await client.chat_postMessage(channel=sim.general, text="hello from bot")
    await client.chat_update(channel=sim.general, ts=posted["ts"], text="edited by bot")
    await sim.wait_for(lambda: len(receiver.events()) == 2 and all(d.done for d in sim.deliveries))
    echoed, changed = sorted(receiver.events(), key=lambda b: b["event"].get("subtype", ""))
    assert echoed["event"]["bot_id"] == sim.bot_id
    assert echoed["event"]["user"] == sim.bot_user_id
    assert changed["event"]["subtype"] == "message_changed"
    assert changed["event"]["message"]["text"] == "edited by bot"
    assert changed["event"]["previous_message"]["text"] == "hello from bot"


async def test_echo_can_be_switched_off(receiver: Receiver) -> None:
    """With echo_bot_messages=False the app hears only users."""
    async with SlackSim(echo_bot_messages=False) as quiet:
        quiet.event_url = receiver.url
        receiver.verifier = SignatureVerifier(quiet.signing_secret)
        client = AsyncWebClient(token=quiet.bot_token, base_url=quiet.api_url)
        await client.chat_postMessage(channel=quiet.general, text="silent")
        await quiet.user_says(quiet.alice, quiet.alice_dm, "loud")
        assert [b["event"]["text"] for b in receiver.events()] == ["loud"]


async def test_user_edits_deletes_and_reactions(
    sim: SlackSim, client: AsyncWebClient, receiver: Receiver
) -> None:
    """User edits, deletions and reactions are delivered in Slack's shapes."""
    bot_ts = (await client.chat_postMessage(channel=sim.alice_dm, text="answer"))["ts"]
    ts = await sim.user_says(sim.alice, sim.alice_dm, "typo")
    await sim.edit(sim.alice, sim.alice_dm, ts, "fixed")
    await sim.react(sim.alice, sim.alice_dm, bot_ts, "octagonal_sign")
    await sim.unreact(sim.alice, sim.alice_dm, bot_ts, "octagonal_sign")
    await sim.delete(sim.alice, sim.alice_dm, ts)
    await sim.wait_for(lambda: all(d.done for d in sim.deliveries) and len(sim.deliveries) == 6)
    events = [b["event"] for b in receiver.events() if b["event"].get("user") != sim.bot_user_id]
    changed, added, removed, deleted = (e for e in events if e.get("text") != "typo")
    assert changed["subtype"] == "message_changed"
    assert changed["message"]["edited"]["user"] == sim.alice
    assert changed["message"]["ts"] == ts
    assert changed["ts"] != ts
    assert (added["type"], added["item_user"], added["item"]["ts"]) == (
        "reaction_added",
        sim.bot_user_id,
        bot_ts,
    )
    assert removed["type"] == "reaction_removed"
    assert deleted["subtype"] == "message_deleted"
    assert deleted["deleted_ts"] == ts
    assert sim.thread(sim.alice_dm, ts) == []


async def test_file_share_and_download(sim: SlackSim, receiver: Receiver) -> None:
    """Files download with the bot token; without it Slack redirects to an HTML sign-in page."""
    file = sim.add_file(b"\x89PNG fake", "shot.png", "image/png")
    cdn = sim.add_file(b"elsewhere", "big.log", "text/plain", redirect_to="http://cdn.invalid/big.log")
    await sim.user_says(sim.alice, sim.alice_dm, "see attached", files=[file])
    event = receiver.events()[0]["event"]
    assert (event["subtype"], event["files"][0]["id"]) == ("file_share", file["id"])
    assert file["url_private_download"].startswith(
        f"{sim.base_url}/files-pri/{sim.team_id}-{file['id']}/download/"
    )
    auth = {"Authorization": f"Bearer {sim.bot_token}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(file["url_private_download"], headers=auth) as response:
            assert (response.status, response.content_type) == (200, "image/png")
            assert await response.read() == b"\x89PNG fake"
        async with http.get(file["url_private"], allow_redirects=False) as response:
            assert response.status == 302
            assert response.headers["Location"].startswith("/?redir=")
        async with http.get(file["url_private"]) as response:
            assert (response.status, response.content_type) == (200, "text/html")
        async with http.get(cdn["url_private"], headers=auth, allow_redirects=False) as response:
            assert (response.status, response.headers["Location"]) == (302, "http://cdn.invalid/big.log")


async def test_a_root_deleted_under_replies_becomes_a_tombstone(
    sim: SlackSim, client: AsyncWebClient, receiver: Receiver
) -> None:
    """Deleting a root that has replies leaves Slackbot's tombstone, told as message_changed; the thread
    stays readable and open to replies. A root without replies is deleted as before."""
    root = await sim.user_says(sim.alice, sim.general, "the build is red")
    await client.chat_postMessage(channel=sim.general, thread_ts=root, text="looking")
    await sim.delete(sim.alice, sim.general, root)
    await sim.wait_for(lambda: any(e["event"].get("subtype") == "message_changed" for e in receiver.events()))
    [changed] = [e["event"] for e in receiver.events() if e["event"].get("subtype") == "message_changed"]
    assert changed["message"]["subtype"] == "tombstone"
    assert changed["message"]["user"] == "USLACKBOT"
    assert changed["message"]["hidden"] is True
    assert (changed["message"]["ts"], changed["message"]["thread_ts"]) == (root, root)
    assert changed["previous_message"]["text"] == "the build is red"
    replies = await client.conversations_replies(channel=sim.general, ts=root)
    assert [m["text"] for m in replies["messages"]] == ["This message was deleted.", "looking"]
    await client.chat_postMessage(channel=sim.general, thread_ts=root, text="still here")
    lone = await sim.user_says(sim.alice, sim.general, "oops")
    await sim.delete(sim.alice, sim.general, lone)
    await sim.wait_for(lambda: any(e["event"].get("deleted_ts") == lone for e in receiver.events()))


async def test_slack_connect_events_name_the_acting_team_and_carry_file_stubs(
    sim: SlackSim, client: AsyncWebClient, receiver: Receiver
) -> None:
    """In a shared channel a partner's message and reaction name the partner's team outside (the
    installation stays in authorizations), and files come as stubs that files.info describes."""
    sim.add_channel("C0SHARED", "shared", members=(sim.alice, sim.bot_user_id), is_ext_shared=True)
    sim.add_user("U0CAROL", "carol", team_id="T0PARTNER", channels=("C0SHARED",))
    file = sim.add_file(b"notes", "notes.txt", "text/plain", user="U0CAROL")
    ts = await sim.user_says("U0CAROL", "C0SHARED", "see attached", files=[file])
    await sim.react("U0CAROL", "C0SHARED", ts, "eyes")
    await sim.user_says(sim.alice, "C0SHARED", "thanks")
    shared, reaction, own = receiver.events()
    assert (shared["team_id"], reaction["team_id"], own["team_id"]) == ("T0PARTNER", "T0PARTNER", sim.team_id)
    assert {b["authorizations"][0]["team_id"] for b in (shared, reaction, own)} == {sim.team_id}
    assert shared["is_ext_shared_channel"] is True
    [stub] = shared["event"]["files"]
    assert stub == {
        "id": file["id"],
        "file_access": "check_file_info",
        "created": 0,
        "timestamp": 0,
        "user": "",
    }
    described = await client.files_info(file=file["id"])
    assert described["file"]["url_private_download"] == file["url_private_download"]
    history = await client.conversations_replies(channel="C0SHARED", ts=ts)
    assert history["messages"][0]["files"][0]["url_private"] == file["url_private"]


async def test_files_upload_v2_posts_the_file_into_the_thread(sim: SlackSim, client: AsyncWebClient) -> None:
    """slack-sdk's three-step external upload works as on Slack: a URL and a file id, the bytes POSTed
    to that URL, then completion shares the file in the thread by one bot message, which files.info
    lists among the file's shares; a file whose bytes never came is not found."""
    root = (await client.chat_postMessage(channel=sim.general, text="Working on it"))["ts"]
    png = b"\x89PNG\r\n\x1a\n" + bytes(64)
    done = await client.files_upload_v2(
        channel=sim.general, thread_ts=root, content=png, filename="shot.png", title="Screenshot"
    )
    assert (done["file"]["title"], len(sim.upload_requests)) == ("Screenshot", 1)
    [reply] = (await client.conversations_replies(channel=sim.general, ts=root))["messages"][1:]
    assert (reply["bot_id"], reply["files"][0]["id"], reply["files"][0]["mimetype"]) == (
        sim.bot_id,
        done["file"]["id"],
        "image/png",
    )
    described = (await client.files_info(file=done["file"]["id"]))["file"]
    assert described["shares"]["public"][sim.general] == [{"ts": reply["ts"], "thread_ts": root}]
    started = await client.files_getUploadURLExternal(filename="never.txt", length=5)
    unsent = json.dumps([{"id": started["file_id"]}])
    error = await api_error(client.api_call("files.completeUploadExternal", params={"files": unsent}))
    assert error.response["error"] == "file_not_found"


async def test_click_and_response_url(sim: SlackSim, client: AsyncWebClient, receiver: Receiver) -> None:
    """A click posts a signed block_actions form; the response_url replaces the original message."""
    ts = (await client.chat_postMessage(channel=sim.general, text="Agent is running", blocks=BUTTONS))["ts"]
    answer = await sim.click(sim.alice, sim.general, ts, "agent_stop")
    assert answer == (200, "")
    request = receiver.requests[-1]
    assert request.valid
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    payload = json.loads(request.form()["payload"])
    assert payload["type"] == "block_actions"
    assert payload["container"]["message_ts"] == ts
    assert payload["actions"][0]["action_id"] == "agent_stop"
    assert payload["actions"][0]["value"] == "chat_7f3a"
    assert payload["actions"][0]["block_id"] == "controls"
    assert payload["user"]["id"] == sim.alice
    async with aiohttp.ClientSession() as http:
        reply = {"replace_original": True, "text": "Stopped"}
        async with http.post(payload["response_url"], json=reply) as response:
            assert response.status == 200
    message = sim.message(sim.general, ts)
    assert message is not None
    assert message.text == "Stopped"
    assert message.blocks == []
    assert sim.response_url_posts[0].body == reply


async def test_slash_command_over_http(sim: SlackSim, receiver: Receiver) -> None:
    """A slash command is a signed form post; an in_channel reply appears in the channel."""
    receiver.script.append((200, 0.0, json.dumps({"response_type": "in_channel", "text": "Agent idle"}), {}))
    status, body = await sim.slash_command(sim.alice, sim.general, "/coder", "status")
    assert status == 200
    assert json.loads(body)["text"] == "Agent idle"
    fields = receiver.requests[0].form()
    assert (fields["command"], fields["text"], fields["user_id"]) == ("/coder", "status", sim.alice)
    assert "thread_ts" not in fields
    assert fields["response_url"].startswith(sim.base_url)
    assert [m.text for m in sim.history(sim.general)] == ["Agent idle"]


async def test_ephemeral_and_home_view(sim: SlackSim, client: AsyncWebClient, receiver: Receiver) -> None:
    """Ephemerals stay out of history; a published Home view comes with app_home_opened."""
    root = await sim.user_says(sim.alice, sim.general, "hi")
    await client.chat_postEphemeral(channel=sim.general, user=sim.alice, text="only you", thread_ts=root)
    assert [e.text for e in sim.ephemerals(sim.alice)] == ["only you"]
    assert [m.ts for m in sim.thread(sim.general, root)] == [root]
    home = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "2 chats"}}]}
    await client.views_publish(user_id=sim.alice, view=home)
    await sim.open_home(sim.alice)
    opened = receiver.events()[-1]["event"]
    assert opened["type"] == "app_home_opened"
    assert opened["view"]["blocks"] == home["blocks"]
    assert sim.home_view(sim.alice) == opened["view"]


async def test_click_on_the_home_tab(sim: SlackSim, client: AsyncWebClient, receiver: Receiver) -> None:
    """A click on a Home tab button posts a signed block_actions from the view: no channel, no
    message, no response_url; a URL button's click is sent too."""
    buttons = [
        {
            "type": "button",
            "action_id": "chat_stop",
            "text": {"type": "plain_text", "text": "Stop"},
            "value": "c1",
        },
        {
            "type": "button",
            "action_id": "chat_open",
            "text": {"type": "plain_text", "text": "Open"},
            "url": "https://x",
        },
    ]
    home = {"type": "home", "blocks": [{"type": "actions", "block_id": "chat:c1", "elements": buttons}]}
    published = (await client.views_publish(user_id=sim.alice, view=home))["view"]
    assert await sim.click_home(sim.alice, "chat_stop") == (200, "")
    request = receiver.requests[-1]
    assert request.valid
    payload = json.loads(request.form()["payload"])
    assert payload["container"] == {"type": "view", "view_id": published["id"]}
    assert payload["view"]["id"] == published["id"]
    assert payload["view"]["type"] == "home"
    assert payload["actions"][0]["action_id"] == "chat_stop"
    assert payload["actions"][0]["value"] == "c1"
    assert payload["actions"][0]["block_id"] == "chat:c1"
    assert not {"channel", "message", "response_url"} & set(payload)
    await sim.click_home(sim.alice, "chat_open")
    assert json.loads(receiver.requests[-1].form()["payload"])["actions"][0]["action_id"] == "chat_open"
    with pytest.raises(ValueError, match="Home tab"):
        await sim.click_home(sim.bob, "chat_stop")


async def test_views_publish_needs_the_home_tab_enabled(sim: SlackSim, client: AsyncWebClient) -> None:
    """With the App Home tab off in the manifest, views.publish fails not_enabled."""
    sim.home_tab_enabled = False
    with pytest.raises(SlackApiError) as refused:
        await client.views_publish(user_id=sim.alice, view={"type": "home", "blocks": []})
    assert refused.value.response["error"] == "not_enabled"
    assert sim.home_view(sim.alice) is None


async def test_streaming_messages_grow_until_stopped(sim: SlackSim, client: AsyncWebClient) -> None:
    """A streamed message's visible text grows per append; appending after stop is refused."""
    root = await sim.user_says(sim.alice, sim.general, "go")
    started = await client.chat_startStream(
        channel=sim.general,
        thread_ts=root,
        markdown_text="Hel",
        recipient_team_id=sim.team_id,
        recipient_user_id=sim.alice,
    )
    ts = started["ts"]
    await client.chat_appendStream(
        channel=sim.general, ts=ts, chunks=[{"type": "markdown_text", "text": "lo"}]
    )
    task = {"type": "task_update", "id": "1", "title": "Run tests", "status": "complete"}
    await client.chat_appendStream(channel=sim.general, ts=ts, markdown_text=" world", chunks=[task])
    message = sim.message(sim.general, ts)
    assert message is not None
    assert message.streaming
    assert message.visible_text == "Hello world"
    await client.chat_stopStream(channel=sim.general, ts=ts, markdown_text="!", blocks=BUTTONS)
    assert not message.streaming
    assert message.visible_text == "Hello world!"
    assert message.chunks == [task]
    late = await api_error(client.chat_appendStream(channel=sim.general, ts=ts, markdown_text="more"))
    assert late.response["error"] == "message_not_in_streaming_state"
    channel_without_recipient = await api_error(client.chat_startStream(channel=sim.general, thread_ts=root))
    assert channel_without_recipient.response["error"] == "invalid_arguments"


async def test_streamed_tasks_and_plans(sim: SlackSim, client: AsyncWebClient) -> None:
    """Task and plan chunks replace their earlier state; malformed or unknown ones are invalid_chunks;
    chat.update replaces them with its text."""
    root = await sim.user_says(sim.alice, sim.general, "go")
    recipient = {"recipient_team_id": sim.team_id, "recipient_user_id": sim.alice}
    bad_mode = await api_error(
        client.chat_startStream(channel=sim.general, thread_ts=root, task_display_mode="list", **recipient)
    )
    assert bad_mode.response["error"] == "invalid_arguments"
    plan = {"type": "plan_update", "title": "Working"}
    running = {"type": "task_update", "id": "t1", "title": "Run tests", "status": "in_progress"}
    started = await client.chat_startStream(
        channel=sim.general, thread_ts=root, task_display_mode="plan", chunks=[plan, running], **recipient
    )
    ts = started["ts"]
    done = {**running, "status": "complete"}
    await client.chat_appendStream(channel=sim.general, ts=ts, chunks=[done, {**plan, "title": "Done"}])
    message = sim.message(sim.general, ts)
    assert message is not None
    assert message.chunks == [done, {**plan, "title": "Done"}]
    untitled = await api_error(
        client.chat_appendStream(channel=sim.general, ts=ts, chunks=[{**done, "title": None}])
    )
    assert untitled.response["error"] == "invalid_chunks"
    sim.chunk_types.discard("task_update")
    unknown = await api_error(client.chat_appendStream(channel=sim.general, ts=ts, chunks=[done]))
    assert unknown.response["error"] == "invalid_chunks"
    await client.chat_update(channel=sim.general, ts=ts, markdown_text="✅ Done · 1 tool")
    assert (message.visible_text, message.chunks) == ("✅ Done · 1 tool", [])


async def test_agent_sessions(sim: SlackSim, client: AsyncWebClient) -> None:
    """agents.sessions.* accept only the status enum and need an app declared as an agent."""
    root = await sim.user_says(sim.alice, sim.general, "go")
    started = await client.agents_sessions_setStatus(
        channel_id=sim.general, thread_ts=root, status="processing", title="Fix test"
    )
    assert started["warning"] == "missing_agent_session_stopped_event_subscription"
    await client.agents_sessions_rename(channel_id=sim.general, thread_ts=root, title="Fix flaky test")
    await client.agents_sessions_setStatus(channel_id=sim.general, thread_ts=root, status="active")
    session = sim.agent_sessions[(sim.general, root)]
    assert (session.status, session.title, session.history) == (
        "active",
        "Fix flaky test",
        ["processing", "active"],
    )
    free_text = await api_error(
        client.agents_sessions_setStatus(channel_id=sim.general, thread_ts=root, status="is thinking…")
    )
    assert free_text.response["error"] == "invalid_arguments"
    sim.agent_declared = False
    refused = await api_error(
        client.agents_sessions_setStatus(channel_id=sim.general, thread_ts=root, status="active")
    )
    assert refused.response["error"] == "not_authorized"
    await client.assistant_threads_setStatus(channel_id=sim.general, thread_ts=root, status="is working…")
    assert sim.assistant_status[(sim.general, root)] == "is working…"


async def test_session_stop_and_rename_by_a_person(receiver: Receiver) -> None:
    """Stop stops the app's streams and is delivered; Slack leaves the status; a rename is delivered."""
    subscribed = {"app_mention", "message.channels", "agent_session_stopped", "agent_session_title_changed"}
    async with SlackSim(time_scale=0.01, subscriptions=subscribed) as sim:
        sim.event_url = receiver.url
        client = AsyncWebClient(token=sim.bot_token, base_url=sim.api_url)
        root = await sim.user_says(sim.alice, sim.general, "go")
        with pytest.raises(ValueError, match="no processing agent session"):
            await sim.stop_session(sim.alice, sim.general, root)
        started = await client.agents_sessions_setStatus(
            channel_id=sim.general, thread_ts=root, status="processing", title="Go"
        )
        assert "warning" not in started.data
        stream = await client.chat_startStream(
            channel=sim.general,
            thread_ts=root,
            markdown_text="Half",
            recipient_team_id=sim.team_id,
            recipient_user_id=sim.alice,
        )
        await sim.stop_session(sim.alice, sim.general, root)
        stopped = receiver.events()[-1]["event"]
        assert (stopped["type"], stopped["thread_ts"], stopped["streaming_message_ts"]) == (
            "agent_session_stopped",
            root,
            [stream["ts"]],
        )
        assert sim.agent_sessions[(sim.general, root)].status == "processing"
        late = await api_error(
            client.chat_appendStream(channel=sim.general, ts=stream["ts"], markdown_text="!")
        )
        assert late.response["error"] == "message_not_in_streaming_state"
        await sim.rename_session(sim.alice, sim.general, root, "Go further")
        renamed = receiver.events()[-1]["event"]
        assert (renamed["type"], renamed["title"], renamed["previous_title"]) == (
            "agent_session_title_changed",
            "Go further",
            "Go",
        )


async def test_older_workspace_lacks_streaming_and_sessions(sim: SlackSim, client: AsyncWebClient) -> None:
    """Methods a workspace does not have answer unknown_method, whatever the arguments."""
    sim.unknown_methods.update({"chat.startStream", "agents.sessions.setStatus"})
    root = await sim.user_says(sim.alice, sim.general, "go")
    for call in (
        client.chat_startStream(channel=sim.general, thread_ts=root, markdown_text="x"),
        client.agents_sessions_setStatus(channel_id=sim.general, thread_ts=root, status="active"),
    ):
        assert (await api_error(call)).response["error"] == "unknown_method"


async def test_socket_mode_hello_ack_and_redelivery(sim: SlackSim) -> None:
    """Socket Mode starts with hello; an un-acked events_api envelope is redelivered with retry_attempt+1."""
    app_client = AsyncWebClient(base_url=sim.api_url)
    refused = await api_error(app_client.apps_connections_open(app_token=sim.bot_token))
    assert refused.response["error"] == "not_authed"
    url = (await app_client.apps_connections_open(app_token=sim.app_token))["url"]
    assert url.startswith(f"ws://127.0.0.1:{sim.base_url.rsplit(':', 1)[1]}/link/?ticket=")
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        hello = await ws.receive_json(timeout=2)
        assert hello["type"] == "hello"
        assert hello["connection_info"] == {"app_id": sim.app_id}
        await sim.user_says(sim.alice, sim.alice_dm, "hello", wait_ack=False)
        first = await ws.receive_json(timeout=2)
        assert (first["type"], first["retry_attempt"], first["accepts_response_payload"]) == (
            "events_api",
            0,
            False,
        )
        second = await ws.receive_json(timeout=2)
        assert (second["retry_attempt"], second["retry_reason"]) == (1, "timeout")
        assert second["payload"]["event_id"] == first["payload"]["event_id"]
        await ws.send_json({"envelope_id": second["envelope_id"]})
        await sim.wait_for(lambda: sim.deliveries[-1].acked)
    assert [(d.transport, d.attempt, d.acked) for d in sim.deliveries] == [
        ("socket_mode", 0, False),
        ("socket_mode", 1, True),
    ]
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await http.ws_connect(url)  # tickets are single-use


async def test_socket_mode_with_sdk_client_and_reconnect(sim: SlackSim) -> None:
    """slack-sdk's SocketModeClient receives and acks events, answers commands and survives a refresh."""
    received: list[SocketModeRequest] = []

    async def on_request(socket_client: Any, request: SocketModeRequest) -> None:
        received.append(request)
        payload = {"text": "Agent idle"} if request.type == "slash_commands" else None
        await socket_client.send_socket_mode_response(
            SocketModeResponse(request.envelope_id, payload=payload)
        )

    socket_client = SocketModeClient(app_token=sim.app_token, web_client=AsyncWebClient(base_url=sim.api_url))
    socket_client.socket_mode_request_listeners.append(on_request)
    await socket_client.connect()  # type: ignore[no-untyped-call]
    try:
        await sim.wait_for(lambda: sim.socket_connections == 1)
        await sim.user_says(sim.alice, sim.general, f"<@{sim.bot_user_id}> hi")
        assert sorted(r.payload["event"]["type"] for r in received) == ["app_mention", "message"]
        assert (await sim.slash_command(sim.alice, sim.general, "/coder", "status")) == (
            200,
            '{"text": "Agent idle"}',
        )
        assert [e.text for e in sim.ephemerals(sim.alice)] == ["Agent idle"]
        await sim.disconnect_socket_mode()
        await sim.wait_for(
            lambda: sim.socket_connections == 1 and len(sim.calls_to("apps.connections.open")) == 2
        )
        await sim.user_says(sim.alice, sim.alice_dm, "still there?")
        assert received[-1].payload["event"]["text"] == "still there?"
        assert all(d.acked and d.transport == "socket_mode" for d in sim.deliveries)
    finally:
        await socket_client.close()  # type: ignore[no-untyped-call]


async def test_wait_for_reports_what_happened(sim: SlackSim, client: AsyncWebClient) -> None:
    """wait_for times out with the predicate's name and the latest calls."""
    await client.auth_test()

    def bot_said_goodbye() -> bool:
        return False

    with pytest.raises(TimeoutError, match=r"bot_said_goodbye.*auth\.test->200"):
        await sim.wait_for(bot_said_goodbye, timeout=0.05)


_MODAL = {
    "type": "modal",
    "callback_id": "coder_link",
    "title": {"type": "plain_text", "text": "Link"},
    "submit": {"type": "plain_text", "text": "Link"},
    "blocks": [
        {
            "type": "input",
            "block_id": "token",
            "label": {"type": "plain_text", "text": "Token"},
            "element": {"type": "plain_text_input", "action_id": "token"},
        }
    ],
}


async def test_views_open_exchanges_a_command_trigger_once(
    sim: SlackSim, client: AsyncWebClient, receiver: Receiver
) -> None:
    """A slash command's trigger_id opens one modal for its user; reused or unknown triggers fail."""
    await sim.slash_command(sim.alice, sim.general, "/coder", "link")
    trigger = receiver.requests[-1].form()["trigger_id"]
    opened = await client.views_open(trigger_id=trigger, view=_MODAL)
    assert opened["view"]["callback_id"] == "coder_link"
    assert sim.modal(sim.alice) == opened["view"]
    assert (await api_error(client.views_open(trigger_id=trigger, view=_MODAL))).response[
        "error"
    ] == "exchanged_trigger_id"
    assert (await api_error(client.views_open(trigger_id="1.2.abc", view=_MODAL))).response[
        "error"
    ] == "invalid_trigger_id"


async def test_views_open_checks_the_view(sim: SlackSim, client: AsyncWebClient, receiver: Receiver) -> None:
    """A modal needs a short title, and a submit button when it has inputs."""
    for broken in (dict(_MODAL, title={"type": "plain_text", "text": "x" * 25}), dict(_MODAL, submit=None)):
        if broken.get("submit") is None:
            broken.pop("submit")
        await sim.slash_command(sim.alice, sim.general, "/coder", "link")
        trigger = receiver.requests[-1].form()["trigger_id"]
        error = await api_error(client.views_open(trigger_id=trigger, view=broken))
        assert error.response["error"] == "invalid_arguments"
    assert sim.modal(sim.alice) is None


async def test_view_submission_errors_update_and_close(
    sim: SlackSim, client: AsyncWebClient, receiver: Receiver
) -> None:
    """A submission is a signed interactive post; errors keep the modal, update replaces it."""
    await sim.slash_command(sim.alice, sim.general, "/coder", "link")
    await client.views_open(trigger_id=receiver.requests[-1].form()["trigger_id"], view=_MODAL)
    receiver.script.append(
        (200, 0.0, json.dumps({"response_action": "errors", "errors": {"token": "no"}}), {})
    )
    await sim.submit_view(sim.alice, {"token": {"token": "typed"}})
    submitted = receiver.requests[-1]
    assert submitted.valid
    payload = json.loads(submitted.form()["payload"])
    assert payload["type"] == "view_submission"
    assert payload["view"]["state"]["values"]["token"]["token"]["value"] == "typed"
    assert sim.view_errors(sim.alice) == {"token": "no"}
    assert sim.modal(sim.alice) is not None
    update = {
        "response_action": "update",
        "view": {"type": "modal", "title": {"type": "plain_text", "text": "Done"}},
    }
    receiver.script.append((200, 0.0, json.dumps(update), {}))
    await sim.submit_view(sim.alice, {"token": {"token": "typed again"}})
    modal = sim.modal(sim.alice)
    assert modal is not None
    assert modal["title"]["text"] == "Done"
    await sim.submit_view(sim.alice, {})
    assert sim.modal(sim.alice) is None


async def test_closing_a_modal_tells_the_app_only_when_asked(
    sim: SlackSim, client: AsyncWebClient, receiver: Receiver
) -> None:
    """Close drops the modal; the app hears ``view_closed`` (signed) only for ``notify_on_close``."""
    for notify in (False, True):
        await sim.slash_command(sim.alice, sim.general, "/coder", "link")
        view = dict(_MODAL, notify_on_close=notify)
        await client.views_open(trigger_id=receiver.requests[-1].form()["trigger_id"], view=view)
        sent = len(receiver.requests)
        await sim.close_view(sim.alice)
        assert sim.modal(sim.alice) is None
        assert len(receiver.requests) == sent + notify
    closed = receiver.requests[-1]
    assert closed.valid
    payload = json.loads(closed.form()["payload"])
    assert (payload["type"], payload["is_cleared"], payload["user"]["id"]) == ("view_closed", True, sim.alice)
    assert payload["view"]["callback_id"] == "coder_link"
    with pytest.raises(ValueError, match="no modal open"):
        await sim.close_view(sim.alice)


async def test_usergroup_members_and_user_kinds(sim: SlackSim, client: AsyncWebClient) -> None:
    """usergroups.users.list names members; users.info tells guests and external users apart."""
    sim.add_usergroup("S0ENG", "eng", [sim.alice])
    sim.add_user("U0GUEST", "guest", is_restricted=True)
    sim.add_user("U0EXT", "ext", team_id="T0OTHER")
    assert (await client.usergroups_users_list(usergroup="S0ENG"))["users"] == [sim.alice]
    error = await api_error(client.usergroups_users_list(usergroup="S0NONE"))
    assert error.response["error"] == "no_such_subteam"
    assert (await client.users_info(user="U0GUEST"))["user"]["is_restricted"] is True
    external = (await client.users_info(user="U0EXT"))["user"]
    assert (external["team_id"], external["is_stranger"]) == ("T0OTHER", True)
