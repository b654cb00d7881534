"""What the bridge keeps for Coder's 2025 AI-SDK chat API, which stores none of it itself.

Its chats have no labels, no queue and no status (reference section 6), and a reply lives only as
long as the request that asked for it. So the backend keeps, per chat:

- its labels, saved right after ``POST /chats`` and before the first message is sent, so a creation
  cut short by a crash is found again and finished instead of repeated (``started`` says whether
  the first message went out);
- whether a reply was streaming (``replying``), so after a restart the thread can be told that the
  reply was cut off when the bridge stopped;
- the follow-ups sent while a reply streams, oldest first, until the reply ends.

``AiSdkStore`` is the port. ``MemoryAiSdkStore`` keeps everything in this process only, for tools and
tests without a database; the bridge wires a database-backed store (``bridge.relay.aisdk_store``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from bridge.coder.types import ChatId, InputPart, Part, QueuedMessage


@dataclass(frozen=True)
class StoredChat:
    """The bridge's own record of one chat of the 2025 AI-SDK API."""

    chat_id: ChatId
    labels: Mapping[str, str]
    started: bool = False
    replying: bool = False


@dataclass(frozen=True)
class HeldFollowUp:
    """A follow-up the bridge holds until the chat's reply ends; ``id`` orders them."""

    id: int
    chat_id: ChatId
    content: tuple[InputPart, ...]
    created_at: datetime

    def queued(self) -> QueuedMessage:
        """As the relay and the thread see it: a queued message, like Coder's own queue shows."""
        parts = tuple(Part(type=p.type, text=p.text, file_id=p.file_id) for p in self.content)
        return QueuedMessage(id=self.id, content=parts, created_at=self.created_at)


def encode_content(content: Sequence[InputPart]) -> list[dict[str, Any]]:
    """Input parts as plain JSON values, for a store that writes them down."""
    return [part.model_dump() for part in content]


def decode_content(raw: Sequence[Any]) -> tuple[InputPart, ...]:
    """The inverse of ``encode_content``."""
    return tuple(InputPart.model_validate(item) for item in raw)


def labels_match(stored: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    """Whether a chat carries every one of ``wanted`` (Coder's label filter semantics)."""
    return all(stored.get(key) == value for key, value in wanted.items())


class AiSdkStore(Protocol):
    """Durable memory for what the 2025 AI-SDK API lacks; every method is one small transaction."""

    async def remember_chat(self, chat_id: ChatId, labels: Mapping[str, str]) -> None:
        """Record a chat just created (not yet started) with the labels Coder could not take."""
        ...

    async def mark_started(self, chat_id: ChatId) -> None:
        """The chat's first message reached Coder."""
        ...

    async def set_replying(self, chat_id: ChatId, replying: bool) -> None:
        """Whether a reply is streaming to this process (recorded for chats not yet known, too)."""
        ...

    async def get_chat(self, chat_id: ChatId) -> StoredChat | None:
        """The record of one chat, if the bridge made one."""
        ...

    async def find_chats(self, labels: Mapping[str, str]) -> list[StoredChat]:
        """Recorded chats carrying all ``labels``, oldest first."""
        ...

    async def forget_chat(self, chat_id: ChatId) -> None:
        """Drop a deleted chat's record and the follow-ups held for it."""
        ...

    async def hold(self, chat_id: ChatId, content: Sequence[InputPart]) -> HeldFollowUp:
        """Keep a follow-up behind the reply that is streaming; it gets the next id."""
        ...

    async def held(self, chat_id: ChatId) -> list[HeldFollowUp]:
        """The chat's held follow-ups, oldest first."""
        ...

    async def release(self, chat_id: ChatId, follow_up_id: int) -> bool:
        """Remove a held follow-up (sent, or taken back); False if it was not held."""
        ...


@dataclass
class MemoryAiSdkStore:
    """``AiSdkStore`` in this process's memory: lost on exit, for tools and tests without a database."""

    _chats: dict[ChatId, StoredChat] = field(default_factory=dict)
    _held: list[HeldFollowUp] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def remember_chat(self, chat_id: ChatId, labels: Mapping[str, str]) -> None:
        """Record the chat with its labels."""
        self._chats[chat_id] = StoredChat(chat_id, dict(labels))

    async def mark_started(self, chat_id: ChatId) -> None:
        """Flag the chat's first message as sent."""
        self._chats[chat_id] = replace(self._record(chat_id), started=True)

    async def set_replying(self, chat_id: ChatId, replying: bool) -> None:
        """Flag whether a reply streams."""
        self._chats[chat_id] = replace(self._record(chat_id), replying=replying)

    def _record(self, chat_id: ChatId) -> StoredChat:
        return self._chats.get(chat_id) or StoredChat(chat_id, {}, started=True)

    async def get_chat(self, chat_id: ChatId) -> StoredChat | None:
        """The chat's record."""
        return self._chats.get(chat_id)

    async def find_chats(self, labels: Mapping[str, str]) -> list[StoredChat]:
        """Records whose labels include ``labels``."""
        return [c for c in self._chats.values() if labels_match(c.labels, labels)]

    async def forget_chat(self, chat_id: ChatId) -> None:
        """Drop the record and its follow-ups."""
        self._chats.pop(chat_id, None)
        self._held = [h for h in self._held if h.chat_id != chat_id]

    async def hold(self, chat_id: ChatId, content: Sequence[InputPart]) -> HeldFollowUp:
        """Append a follow-up."""
        held = HeldFollowUp(next(self._ids), chat_id, tuple(content), datetime.now(UTC))
        self._held.append(held)
        return held

    async def held(self, chat_id: ChatId) -> list[HeldFollowUp]:
        """The chat's follow-ups in order."""
        return [h for h in self._held if h.chat_id == chat_id]

    async def release(self, chat_id: ChatId, follow_up_id: int) -> bool:
        """Remove one follow-up."""
        before = len(self._held)
        self._held = [h for h in self._held if not (h.chat_id == chat_id and h.id == follow_up_id)]
        return len(self._held) != before
