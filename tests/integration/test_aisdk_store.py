"""The memory the bridge keeps for Coder's 2025 AI-SDK API: one contract, in memory and in the database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.coder.aisdk_store import AiSdkStore, MemoryAiSdkStore, StoredChat
from bridge.coder.types import ChatId, InputPart
from bridge.db.engine import Database
from bridge.db.migrate import upgrade
from bridge.relay.aisdk_store import DatabaseAiSdkStore
from tests.conftest import postgres_database

A, B = ChatId("chat-a"), ChatId("chat-b")
THREAD = {"slack_team": "T1", "slack_channel": "C1", "slack_thread": "1.2", "slack_user": "U1"}


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AiSdkStore]:
    """Each implementation of the store, the database ones on a fresh, migrated database."""
    if request.param == "memory":
        yield MemoryAiSdkStore()
        return
    if request.param == "sqlite":
        urls: AsyncIterator[str] = _one(f"sqlite:///{tmp_path}/store.db")
    else:
        urls = postgres_database()
    async for url in urls:
        db = Database(url)
        try:
            await upgrade(db)
            yield DatabaseAiSdkStore(db)
        finally:
            await db.dispose()


async def _one(url: str) -> AsyncIterator[str]:
    yield url


async def test_a_chat_is_found_by_its_labels_and_marked_started(store: AiSdkStore) -> None:
    """A remembered chat is found by any subset of its labels, not started until marked so."""
    await store.remember_chat(A, THREAD)
    assert await store.find_chats({"slack_thread": "1.2"}) == [StoredChat(A, THREAD)]
    assert await store.find_chats({"slack_thread": "9.9"}) == []
    await store.mark_started(A)
    assert await store.get_chat(A) == StoredChat(A, THREAD, started=True)


async def test_replying_is_recorded_for_any_chat(store: AiSdkStore) -> None:
    """A chat the bridge did not create gets a record when its reply starts; it counts as started."""
    await store.set_replying(B, True)
    assert await store.get_chat(B) == StoredChat(B, {}, started=True, replying=True)
    await store.set_replying(B, False)
    stored = await store.get_chat(B)
    assert stored is not None
    assert not stored.replying


async def test_follow_ups_are_held_in_order_and_released_one_by_one(store: AiSdkStore) -> None:
    """Held follow-ups come back oldest first, per chat, with their content intact."""
    first = await store.hold(A, [InputPart.of_text("one")])
    await store.hold(B, [InputPart.of_text("elsewhere")])
    second = await store.hold(A, [InputPart.of_text("two"), InputPart.of_file("f-1")])
    third = await store.hold(A, [InputPart.of_text("three")])
    assert [h.id for h in await store.held(A)] == [first.id, second.id, third.id]
    assert (await store.held(A))[1].content == (InputPart.of_text("two"), InputPart.of_file("f-1"))
    assert await store.release(A, second.id)
    assert not await store.release(A, second.id), "released once"
    assert not await store.release(B, first.id), "another chat's id is not this chat's"
    assert [h.queued().text for h in await store.held(A)] == ["one", "three"]


async def test_forgetting_a_chat_drops_its_follow_ups(store: AiSdkStore) -> None:
    """A deleted chat leaves nothing behind; other chats keep theirs."""
    await store.remember_chat(A, THREAD)
    await store.hold(A, [InputPart.of_text("one")])
    await store.hold(B, [InputPart.of_text("two")])
    await store.forget_chat(A)
    assert await store.get_chat(A) is None
    assert await store.held(A) == []
    assert [h.queued().text for h in await store.held(B)] == ["two"]
