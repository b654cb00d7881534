"""The database behind ``AiSdkStore``: what Coder's 2025 AI-SDK chat API cannot keep survives restarts.

Tables ``legacy_chat`` and ``legacy_follow_up`` (models ``AisdkChat`` and ``AisdkFollowUp``); labels
and message content are stored as JSON. Each call is its own short transaction, so a held follow-up
is durable before the person is told it was queued.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from bridge.coder.aisdk_store import HeldFollowUp, StoredChat, decode_content, encode_content, labels_match
from bridge.coder.types import ChatId, InputPart
from bridge.db import repo
from bridge.db.engine import Database
from bridge.db.models import AisdkChat, AisdkFollowUp


def _stored(row: AisdkChat) -> StoredChat:
    return StoredChat(ChatId(row.chat_id), json.loads(row.labels), row.started, row.replying)


def _held(row: AisdkFollowUp) -> HeldFollowUp:
    assert row.id is not None
    return HeldFollowUp(row.id, ChatId(row.chat_id), decode_content(json.loads(row.content)), row.created_at)


class DatabaseAiSdkStore:
    """``AiSdkStore`` on the bridge's database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def remember_chat(self, chat_id: ChatId, labels: Mapping[str, str]) -> None:
        """Record a new chat, not yet started, with its labels."""
        async with self._db.unit() as session:
            await repo.save_aisdk_chat(
                session, chat_id, labels=json.dumps(dict(labels), sort_keys=True), started=False
            )

    async def mark_started(self, chat_id: ChatId) -> None:
        """The chat's first message reached Coder."""
        async with self._db.unit() as session:
            await repo.save_aisdk_chat(session, chat_id, started=True)

    async def set_replying(self, chat_id: ChatId, replying: bool) -> None:
        """Whether a reply streams to the bridge."""
        async with self._db.unit() as session:
            await repo.save_aisdk_chat(session, chat_id, replying=replying)

    async def get_chat(self, chat_id: ChatId) -> StoredChat | None:
        """The chat's record."""
        async with self._db.unit() as session:
            row = await repo.find_aisdk_chat(session, chat_id)
        return _stored(row) if row is not None else None

    async def find_chats(self, labels: Mapping[str, str]) -> list[StoredChat]:
        """Records carrying all ``labels``, oldest first."""
        async with self._db.unit() as session:
            rows = await repo.find_all_aisdk_chats(session)
        return [chat for chat in map(_stored, rows) if labels_match(chat.labels, labels)]

    async def forget_chat(self, chat_id: ChatId) -> None:
        """Drop the record and its held follow-ups."""
        async with self._db.unit() as session:
            await repo.delete_aisdk_chat(session, chat_id)

    async def hold(self, chat_id: ChatId, content: Sequence[InputPart]) -> HeldFollowUp:
        """Append a follow-up."""
        async with self._db.unit() as session:
            row = await repo.hold_aisdk_follow_up(session, chat_id, json.dumps(encode_content(content)))
        return _held(row)

    async def held(self, chat_id: ChatId) -> list[HeldFollowUp]:
        """The chat's held follow-ups, oldest first."""
        async with self._db.unit() as session:
            rows = await repo.find_aisdk_follow_ups(session, chat_id)
        return [_held(row) for row in rows]

    async def release(self, chat_id: ChatId, follow_up_id: int) -> bool:
        """Remove one held follow-up."""
        async with self._db.unit() as session:
            return await repo.release_aisdk_follow_up(session, chat_id, follow_up_id)
