"""The G2 backend: Coder's promoted Chats API under ``/api/v2/chats`` (Coder 2.37+).

Its requests are G1's (reference section 0), so this is ``ExperimentalBackend`` with the G2 base
path and parsers (``v2_wire``). What differs is behaviour, from coder/coder's chat state machine
(coderd/x/chatd/chatstate; chats tests in coderd): interrupting an idle chat and archiving an active
one answer 409 instead of succeeding, and there is no ``POST /archive`` route to fall back to.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar, Literal

from bridge.coder.backoff import Backoff
from bridge.coder.errors import CoderNotFound, CoderRejected
from bridge.coder.experimental import ChatsApi, ExperimentalBackend
from bridge.coder.experimental_wire import decode
from bridge.coder.rest import read_json
from bridge.coder.types import ATTACHMENT_TYPES, Capabilities, Chat, ChatCost, ChatId
from bridge.coder.v2_wire import parse_chat, parse_stream_event, parse_watch_event

CHATS = "/api/v2/chats"
G2_API = ChatsApi("v2", CHATS, parse_chat, parse_stream_event, parse_watch_event, ATTACHMENT_TYPES)

_IDLE = frozenset({"waiting", "error"})
"""The only statuses chatstate lets a chat be archived from (states W and E)."""


def _conflict(exc: CoderRejected) -> bool:
    return exc.status == 409


class V2Backend(ExperimentalBackend):
    """``CoderBackend`` for the promoted G2 API (``/api/v2/chats``).

    ``organization_id`` is required on chat creation here; when not given it is the token owner's
    first organization, looked up once (as in G1).
    """

    api: ClassVar[ChatsApi] = G2_API
    mcp_servers_paths: ClassVar[tuple[str, ...]] = (
        "/api/v2/organizations/{organization}/mcp-servers",
        "/api/experimental/mcp/servers",
    )
    """The newest source lists MCP servers per organization (coder/coder coderd/chat_routes.go at
    004053e8, ``registerOrganizationChatRoutes``; codersdk/mcp.go at 0217d8af ``MCPServerConfigs``),
    where older G2 builds still had the unpromoted experimental listing G1 used (codersdk/mcp.go of
    that era); ``/api/v2/ai-gateway/mcp-servers`` was only ever in a design document."""
    models_path: ClassVar[str] = "/api/v2/organizations/{organization}/chats/models"
    """PR #28632 moved the organization's model configs out of the chats prefix."""
    models_key: ClassVar[str | None] = "models"
    renames: ClassVar[Literal["coder", "try"]] = "coder"
    """G2's patchChat applies ``title`` (coderd ``applyChatTitleUpdate``, codersdk UpdateChatRequest)."""
    settle_attempts: ClassVar[int] = 20
    """How often ``set_archived`` re-reads an interrupted chat before giving up on it going idle."""
    settle_delays: ClassVar[Backoff] = Backoff(initial=0.05, cap=1.0)

    @property
    def capabilities(self) -> Capabilities:
        """G1's, and a chat may wait for its person (``requires_action``) and start in plan mode."""
        return Capabilities(
            waits_for_user=True, plan_mode=True, options=frozenset({"model", "workspace", "mcp", "plan"})
        )

    async def chat_cost(self, chat_id: ChatId) -> ChatCost | None:
        """``GET /chats/{id}/cost`` (codersdk ``GetChatCost``, newest builds); ``None`` where the
        build has no such route (404 for a chat this backend follows)."""
        try:
            response = await self._rest.call(
                "chat_cost", "GET", self.api.path(chat_id, "cost"), idempotent=True
            )
        except CoderNotFound:
            return None
        return decode(read_json(response), ChatCost.model_validate, "chat cost")

    async def interrupt(self, chat_id: ChatId) -> Chat:
        """``POST /chats/{id}/interrupt``; an idle chat (Coder's 409) is returned as it is."""
        try:
            return await super().interrupt(chat_id)
        except CoderRejected as exc:
            if not _conflict(exc):
                raise
        return await self.get_chat(chat_id)

    async def set_archived(self, chat_id: ChatId, archived: bool) -> None:
        """``PATCH /chats/{id}``; an active chat (409) is interrupted first, then archived once idle."""
        try:
            await self._patch_archived(chat_id, archived)
            return
        except CoderRejected as exc:
            if not (archived and _conflict(exc)):
                raise
        await self.interrupt(chat_id)
        await self._until_idle(chat_id)
        await self._patch_archived(chat_id, archived)

    async def _until_idle(self, chat_id: ChatId) -> None:
        """Wait (bounded) for an interrupt to land: the chat leaves ``interrupting``/``running``."""
        delays = self.settle_delays.delays()
        for _ in range(self.settle_attempts):
            if (await self.get_chat(chat_id)).status.name in _IDLE:
                return
            await asyncio.sleep(next(delays))
