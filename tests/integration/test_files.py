"""End to end: files attached in Slack reach Coder as file parts, checked on the way; bad ones are named."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from tests.integration.conftest import World, message_parts

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(64)
JPEG = b"\xff\xd8\xff\xe0" + bytes(64)
PDF = b"%PDF-1.7\n" + bytes(64)


def _user_messages(world: World, root: str) -> list[dict[str, Any]]:
    return [m for m in world.chat_of(root).messages if m["role"] == "user"]


def _parts(message: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [p for p in message_parts(message) if p["type"] == kind]


def _note(world: World, root: str, *, channel: str | None = None) -> str:
    return next((t for t in world.bot_texts(root, channel) if t.startswith("⚠️ Not sent")), "")


async def _mention_with(world: World, text: str, *files: dict[str, Any], channel: str | None = None) -> str:
    slack = world.slack
    return await slack.user_says(
        slack.alice, channel or slack.general, f"<@{slack.bot_user_id}> {text}", files=list(files)
    )


async def test_image_in_mention_goes_with_the_text_in_one_message(world: World) -> None:
    """A mention's image is uploaded to Coder and sent as a file part beside the text, in one message."""
    world.require("stored_files")
    image = world.slack.add_file(PNG, "screen.png", "image/png")
    root = await _mention_with(world, "what is wrong here?", image)
    await world.until_idle_and_shown(root)
    [first] = _user_messages(world, root)
    assert [p["text"] for p in _parts(first, "text")] == ["what is wrong here?"]
    [part] = _parts(first, "file")
    assert part["media_type"] == "image/png"
    assert world.coder.files[part["file_id"]].data == PNG
    assert world.coder.files[part["file_id"]].name == "screen.png"


async def test_image_in_follow_up_and_file_only_reply(world: World) -> None:
    """A reply's image goes with its text; a reply that is only an image is sent as just the file."""
    world.require("stored_files")
    root = await world.mention("look at these")
    await world.until_idle_and_shown(root)
    jpeg = world.slack.add_file(JPEG, "photo.jpg", "image/jpeg")
    await world.slack.user_says(
        world.slack.alice, world.slack.general, "first one", thread_ts=root, files=[jpeg]
    )
    await world.until_idle_and_shown(root, turns=2)
    png = world.slack.add_file(PNG, "second.png", "image/png")
    await world.slack.user_says(world.slack.alice, world.slack.general, "", thread_ts=root, files=[png])
    await world.until_idle_and_shown(root, turns=3)
    messages = _user_messages(world, root)
    assert [p["media_type"] for p in _parts(messages[1], "file")] == ["image/jpeg"]
    assert [p["text"] for p in _parts(messages[1], "text")] == ["first one"]
    assert [p["media_type"] for p in _parts(messages[2], "file")] == ["image/png"]
    assert _parts(messages[2], "text") == []


async def test_image_in_a_dm_starts_a_chat(world: World) -> None:
    """A DM with an image starts a chat without a mention; the image goes along, the thread continues it."""
    slack = world.slack
    dm = slack.add_im(slack.alice).id
    image = slack.add_file(PNG, "dm.png", "image/png")
    root = await slack.user_says(slack.alice, dm, "fix this layout", files=[image])
    await world.until(lambda: world.chat_of(root) is not None and len(world.bot_texts(root, dm)) > 1)
    [first] = _user_messages(world, root)
    assert len(_parts(first, "file")) == 1
    await world.until(lambda: world.chat_of(root).status == "waiting")
    await slack.user_says(slack.alice, dm, "and the footer", thread_ts=root)
    await world.until(lambda: len(_user_messages(world, root)) == 2)
    assert len(world.coder.chats) == 1


async def test_disguised_and_unsupported_files_are_named_and_the_rest_is_sent(world: World) -> None:
    """Type is decided by the bytes: a PDF named .png and garbage named .jpg are judged as what they are."""
    world.require("stored_files")
    slack = world.slack
    image = slack.add_file(PNG, "real.png", "application/octet-stream")  # wrong declared type, real PNG
    disguised = slack.add_file(PDF, "fake.png", "image/png")
    garbage = slack.add_file(b"\x00\x01\x02\xfe\xff" * 20, "noise.jpg", "image/jpeg")
    root = await _mention_with(world, "check", image, disguised, garbage)
    await world.until_idle_and_shown(root)
    [first] = _user_messages(world, root)
    media = [p["media_type"] for p in _parts(first, "file")]
    note = _note(world, root)
    assert "`noise.jpg` (not an image, PDF or text file)" in note
    if world.coder.dialect.promoted:  # Coder 2.37+ takes PDFs
        assert media == ["image/png", "application/pdf"]
    else:
        assert media == ["image/png"]
        assert "`fake.png` (application/pdf; this Coder takes only images)" in note
    assert note.endswith("The rest of your message was sent.")


async def test_text_files_go_where_the_generation_takes_them(world: World) -> None:
    """CSV, JSON and Markdown go to a Coder that takes them (2.37+); JSON must parse."""
    slack = world.slack
    files = [
        slack.add_file(b"a,b\n1,2\n", "data.csv", "text/csv"),
        slack.add_file(json.dumps({"k": 1}).encode(), "conf.json", "application/json"),
        slack.add_file(b"# Title\n", "notes.md", "text/markdown"),
        slack.add_file(b"{not json", "broken.json", "application/json"),
    ]
    root = await _mention_with(world, "see attached", *files)
    await world.until_idle_and_shown(root)
    [first] = _user_messages(world, root)
    media = [p["media_type"] for p in _parts(first, "file")]
    note = _note(world, root)
    assert "`broken.json` (named .json but not valid JSON)" in note
    if world.coder.dialect.promoted:
        assert media == ["text/csv", "application/json", "text/markdown"]
    else:
        assert media == []
        assert "`data.csv` (text/csv; this Coder takes only images)" in note


async def test_oversized_file_is_skipped_before_download(world: World) -> None:
    """A file Slack says is over the cap is named as too large and never downloaded."""
    big = world.slack.add_file(PNG + bytes(world.settings.max_file_bytes), "huge.png", "image/png")
    root = await _mention_with(world, "see this", big)
    await world.until_idle_and_shown(root)
    assert "`huge.png` (larger than 10 MB)" in _note(world, root)
    assert _parts(_user_messages(world, root)[0], "file") == []
    assert not world.coder.files


async def test_redirect_within_slack_hosts_is_followed_and_the_size_cap_holds_while_streaming(
    world: World,
) -> None:
    """A redirect to an allowed host is followed; a body past the cap is abandoned mid-stream."""
    world.require("stored_files")
    slack = world.slack
    target = slack.add_file(PNG, "cdn.png", "image/png")
    huge = slack.add_file(PNG + bytes(world.settings.max_file_bytes), "cdn-huge.png", "image/png")
    small = slack.add_file(b"x", "moved.png", "image/png", redirect_to=target["url_private_download"])
    lying = slack.add_file(b"x", "sneaky.png", "image/png", redirect_to=huge["url_private_download"])
    root = await _mention_with(world, "two", small, lying)
    await world.until_idle_and_shown(root)
    [part] = _parts(_user_messages(world, root)[0], "file")
    assert world.coder.files[part["file_id"]].data == PNG
    assert "`sneaky.png` (larger than 10 MB)" in _note(world, root)


@pytest.fixture
async def foreign_host() -> AsyncIterator[tuple[str, list[str]]]:
    """A server on loopback under another host name, recording every request it gets."""
    hits: list[str] = []

    async def record(request: web.Request) -> web.Response:
        hits.append(request.headers.get("Authorization", ""))
        return web.Response(body=PNG, content_type="image/png")

    app = web.Application()
    app.router.add_get("/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://localhost:{port}/evil.png", hits
    finally:
        await runner.cleanup()


async def test_redirect_to_another_host_is_refused_without_a_request(
    world: World, foreign_host: tuple[str, list[str]]
) -> None:
    """A redirect off Slack's hosts is refused before any request, so the token never leaves Slack."""
    url, hits = foreign_host
    escaping = world.slack.add_file(b"x", "escape.png", "image/png", redirect_to=url)
    root = await _mention_with(world, "look", escaping)
    await world.until_idle_and_shown(root)
    assert "`escape.png` (its link leads outside Slack's file hosts)" in _note(world, root)
    assert hits == []
    assert [p["text"] for p in _parts(_user_messages(world, root)[0], "text")] == ["look"]


async def test_file_coder_rejects_is_named_and_the_text_still_goes(world: World) -> None:
    """When Coder refuses an upload, the thread says so with Coder's reason and the text is sent."""
    world.require("stored_files")
    world.coder.fail_next("POST", r"/chats/files$", 400, "Unsupported file type.")
    image = world.slack.add_file(PNG, "odd.png", "image/png")
    root = await _mention_with(world, "try this", image)
    await world.until_idle_and_shown(root)
    assert "`odd.png` (Coder refused it: Unsupported file type)" in _note(world, root)
    assert [p["text"] for p in _parts(_user_messages(world, root)[0], "text")] == ["try this"]
