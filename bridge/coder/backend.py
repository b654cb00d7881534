"""The one interface the relay uses to talk to Coder, whatever generation of the Chats API it serves.

A backend owns its generation's paths, request shapes, status names and stream framing, and speaks
only ``bridge.coder.types`` to its callers. ``connect_backend`` probes the server and picks one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Protocol

from bridge.coder.types import (
    Chat,
    ChatId,
    CoderUser,
    InputPart,
    Message,
    SendResult,
    StreamEvent,
)


class ChatStream(Protocol):
    """Batches of events of one chat, across reconnects, until closed.

    Every (re)connection starts with a ``ConnectedEvent`` followed by the server's snapshot, so a
    consumer can reset per-turn state. Reconnects resume after the highest message id seen.
    """

    def __aiter__(self) -> AsyncIterator[list[StreamEvent]]: ...

    async def aclose(self) -> None: ...


class CoderBackend(Protocol):
    """Operations on Coder chats, independent of the API generation."""

    @property
    def generation(self) -> str:
        """Short name of the API generation, e.g. ``experimental``; shown by ``bridge doctor``."""
        ...

    @property
    def base_url(self) -> str:
        """The deployment URL, e.g. ``https://coder.example.com``."""
        ...

    def chat_url(self, chat_id: ChatId) -> str:
        """Where a person opens the chat in Coder's web UI."""
        ...

    async def whoami(self) -> CoderUser:
        """The user the token belongs to; raises ``CoderAuthError`` for a bad token."""
        ...

    async def create_chat(
        self,
        content: Sequence[InputPart],
        *,
        labels: Mapping[str, str],
        organization_id: str | None = None,
    ) -> Chat:
        """Start a chat whose first user message is ``content``."""
        ...

    async def send_message(self, chat_id: ChatId, content: Sequence[InputPart]) -> SendResult:
        """Add a user message; Coder queues it while the agent is busy."""
        ...

    async def get_chat(self, chat_id: ChatId) -> Chat:
        """Current metadata of one chat."""
        ...

    async def list_chats(self, *, labels: Mapping[str, str] | None = None) -> list[Chat]:
        """The token owner's chats, optionally only those carrying all ``labels``."""
        ...

    async def recent_messages(self, chat_id: ChatId, *, limit: int = 50) -> list[Message]:
        """The newest persisted messages, oldest first."""
        ...

    async def interrupt(self, chat_id: ChatId) -> Chat:
        """Stop the running turn."""
        ...

    async def set_archived(self, chat_id: ChatId, archived: bool) -> None:
        """Archive or unarchive a chat (archiving also interrupts it)."""
        ...

    async def upload_file(
        self, organization_id: str, data: bytes, media_type: str, filename: str
    ) -> str:
        """Upload a file for use in an ``InputPart.of_file``; returns its id."""
        ...

    def stream(self, chat_id: ChatId, *, after_id: int | None = None) -> ChatStream:
        """Follow a chat's events, starting with a snapshot of messages after ``after_id``."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
