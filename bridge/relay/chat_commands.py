"""What ``/coder new``, ``list``, ``status`` and ``archive`` do; each returns the caller's private answer.

A slash command carries no thread (Slack sends none), so ``new`` makes one: it checks what a
mention would (access policy, identity, options) before posting anything, then posts the task as
a top-level message of the bot in the channel and hands it to the relay as if it were a mention
there, so everything after (the chat's labels, header, replies, follow-ups) is the same. ``list``
and ``status`` find the caller's chats, for someone the access policy lets use the bridge, by their
``slack_user``/``slack_team`` labels in Coder (the bridge's own store where the generation has no
labels). ``archive`` acts on a chat the bridge
started from Slack, by id or link, under the same access policy as the archive reaction. ``follow``
gives a chat started elsewhere a thread in the caller's channel (``relay.adoption``): it reads the
chat as the caller (their own Coder account in linked mode), so nobody follows a chat they could
not open in Coder.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from bridge.coder.backend import CoderBackend
from bridge.coder.errors import CoderError, CoderNotFound
from bridge.coder.types import Chat, ChatId
from bridge.db import repo
from bridge.db.engine import Database
from bridge.relay.adoption import Adopted, Adoption, Place
from bridge.relay.controls import Controls
from bridge.relay.home import permalink
from bridge.relay.identity import HOW_TO_LINK, Identity
from bridge.relay.inbound import Inbound, IncomingMessage
from bridge.relay.options import OptionError, resolve, split_options
from bridge.relay.outbox import Outbox
from bridge.relay.policy import Act, Policy, direct_channel
from bridge.relay.ports import SlackError
from bridge.slack.blocks import render_usage
from bridge.slack.defuse import unmention
from bridge.slack.failures import render_coder_error

log = logging.getLogger(__name__)

_CHAT_ID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_LISTED = 10
"""Chats ``list`` shows at most, newest first."""
_STATUS = 3
_NEVER = datetime.min.replace(tzinfo=UTC)
"""Chats ``status`` without an argument shows: the caller's latest."""
FOLLOW_UNSUPPORTED = (
    "This Coder deployment serves the 2025 AI chat API, where an agent's replies reach only the client "
    "that asked, so I can't follow a chat started elsewhere. Coder's Chats API (the `agents` "
    "experiment, or Coder 2.37 and later) adds it."
)
_TOTALED = 200
"""Messages ``status`` adds up for one chat: the most one page of Coder's messages holds."""


@dataclass(frozen=True)
class Caller:
    """Who ran a command, and where."""

    team_id: str
    channel_id: str
    user_id: str
    request_id: str
    """Unique per invocation (the command's trigger id)."""

    @property
    def direct(self) -> bool:
        """Run in a direct message with the bot."""
        return direct_channel(self.channel_id)


def chat_id_in(text: str) -> ChatId | None:
    """The chat id in an argument: a bare id or a Coder link (``/agents/<id>``, ``/chat/<id>``)."""
    found = _CHAT_ID.search(text)
    return ChatId(found.group(0).lower()) if found else None


class ChatCommands:
    """The chat subcommands of ``/coder``."""

    def __init__(
        self,
        db: Database,
        identity: Identity,
        policy: Policy,
        outbox: Outbox,
        inbound: Inbound,
        controls: Controls,
        adoption: Adoption,
        *,
        workspace_url: str,
    ) -> None:
        self._db = db
        self._adoption = adoption
        self._workspace_url = workspace_url
        self._identity = identity
        self._policy = policy
        self._outbox = outbox
        self._inbound = inbound
        self._controls = controls

    async def new(self, caller: Caller, task: str, *, plan: bool = False) -> str:
        """Start a chat with ``task`` in a new thread of the caller's channel, as a mention would;
        ``plan`` (``/coder plan``): in plan mode, as ``plan=true`` before the task asks."""
        command = "plan" if plan else "new"
        if plan:
            task = f"plan=true {task}"
        try:
            requested, prompt = split_options(task)
        except OptionError as exc:
            return str(exc)
        if not prompt:
            return f"Tell me what to do, e.g. `/coder {command} fix the flaky auth test`."
        refusal = await self._policy.refusal(
            caller.user_id, Act.START, channel_id=caller.channel_id, direct=caller.direct
        )
        if refusal is not None:
            return refusal
        backend = await self._identity.backend_for(caller.team_id, caller.user_id)
        if backend is None:
            return HOW_TO_LINK
        try:
            if requested:
                await resolve(backend, requested)
        except OptionError as exc:
            return str(exc)
        try:
            ts = await self._outbox.announce(caller.channel_id, f"<@{caller.user_id}> asked: {task}")
        except SlackError as exc:
            log.warning("could not start a thread in %s: %s", caller.channel_id, exc)
            return f"I can't post in this channel ({exc.code}); invite me to it first, or mention me there."
        self._inbound.submit(
            IncomingMessage(
                event_id=f"command:{caller.request_id}",
                team_id=caller.team_id,
                channel_id=caller.channel_id,
                user_id=caller.user_id,
                text=task,
                ts=ts,
                thread_ts=None,
                mentioned=True,
                direct=caller.direct,
            )
        )
        return "Starting a Coder chat in a new thread here; follow it there."

    async def listing(self, caller: Caller) -> str:
        """The caller's chats started from Slack, newest first, with status and links."""
        found = await self._mine(caller)
        if isinstance(found, str):
            return found
        backend, chats = found
        if not chats:
            return "You have no Coder chats started from Slack yet. `/coder new <task>` starts one."
        lines = [_line(backend, chat) for chat in chats[:_LISTED]]
        more = f"\n…and {len(chats) - _LISTED} more." if len(chats) > _LISTED else ""
        return "Your Coder chats:\n" + "\n".join(lines) + more

    async def status(self, caller: Caller, argument: str) -> str:
        """One chat's status (by id or link), or the caller's latest chats'."""
        chat_id = chat_id_in(argument)
        if argument and chat_id is None:
            return "Give a chat id or link, e.g. `/coder status https://coder.example.com/agents/<id>`."
        found = await self._mine(caller)
        if isinstance(found, str):
            return found
        backend, chats = found
        if chat_id is not None:
            chats = [c for c in chats if c.id == chat_id]
            if not chats:
                return "That is not one of your chats started from Slack."
        if not chats:
            return "You have no Coder chats started from Slack yet."
        if chat_id is not None:
            return f"{_line(backend, chats[0])}\n{await _totals(backend, chat_id)}"
        return "\n".join(_line(backend, chat) for chat in chats[:_STATUS])

    async def archive(self, caller: Caller, argument: str) -> str:
        """Archive a chat the bridge started, by id or link, if the caller may control it."""
        chat_id = chat_id_in(argument)
        if chat_id is None:
            return "Which chat? `/coder archive <chat id or link>` (`/coder list` shows yours)."
        async with self._db.unit() as session:
            link = await repo.find_link_by_chat(session, chat_id)
        if link is None:
            return "I know no chat with that id: I can archive only chats started from Slack."
        if link.archived:
            return "That chat is archived already."
        return await self._controls.archive(link, caller.user_id, caller.request_id)

    async def follow(self, caller: Caller, argument: str) -> str:
        """Follow an existing chat the caller may read in a new thread of their channel, both ways."""
        chat_id = chat_id_in(argument)
        if chat_id is None:
            return "Which chat? `/coder follow <chat link or id>`, e.g. a link to the chat in Coder."
        refusal = await self._policy.refusal(
            caller.user_id, Act.START, channel_id=caller.channel_id, direct=caller.direct
        )
        if refusal is not None:
            return refusal
        if not self._identity.shared.capabilities.watch:
            return FOLLOW_UNSUPPORTED
        backend = await self._identity.backend_for(caller.team_id, caller.user_id)
        if backend is None:
            return HOW_TO_LINK
        account = "your Coder account" if self._identity.linked else "the bridge's Coder account"
        try:
            chat = await backend.get_chat(chat_id)
            if chat.archived:
                return "That chat is archived in Coder; unarchive it there first."
            place = Place(caller.team_id, caller.channel_id)
            result = await self._adoption.adopt(
                chat, place, requester=caller.user_id, by=caller.user_id, backend=backend
            )
        except CoderNotFound:
            return f"I can't find that chat in Coder, or {account} can't open it."
        except CoderError as exc:
            return f"I couldn't ask Coder for that chat: {render_coder_error(exc)}"
        if not isinstance(result, Adopted):
            if result.not_member:
                return f"I can't post in this channel ({result.code}); invite me to it first."
            return f"I couldn't start a thread here ({result.code})."
        link = result.link
        thread = permalink(self._workspace_url, link)
        if result.before:
            return f"That chat is followed in [this thread]({thread}) already; continue it there."
        return f"Following that chat in [a new thread]({thread}) here; replies there go to the agent."

    async def _mine(self, caller: Caller) -> tuple[CoderBackend, list[Chat]] | str:
        """The caller's backend and their Slack-started chats (newest first), or why not."""
        refusal = await self._policy.refusal(caller.user_id, Act.ACCOUNT)
        if refusal is not None:
            return refusal
        backend = await self._identity.backend_for(caller.team_id, caller.user_id)
        if backend is None:
            return HOW_TO_LINK
        labels = {"slack_team": caller.team_id, "slack_user": caller.user_id}
        try:
            chats = await backend.list_chats(labels=labels)
        except CoderNotFound:
            chats = []
        except CoderError as exc:
            return f"I couldn't ask Coder for your chats: {render_coder_error(exc)}"
        return backend, sorted(chats, key=lambda c: c.updated_at or c.created_at or _NEVER, reverse=True)


async def _totals(backend: CoderBackend, chat_id: ChatId) -> str:
    """What the chat's model calls used in all (over its last ``_TOTALED`` messages, the most Coder
    gives at once) and what it cost, where Coder says."""
    try:
        messages = await backend.recent_messages(chat_id, limit=_TOTALED)
        cost = await backend.chat_cost(chat_id)
    except CoderError as exc:
        return f"I couldn't ask Coder what it used: {render_coder_error(exc)}"
    used = render_usage([m.usage for m in messages if m.usage is not None], cost)
    if not used:
        return "Coder recorded no token usage for this chat."
    return "In all: " + used + (f" (its last {_TOTALED} messages)" if len(messages) >= _TOTALED else "")


def _line(backend: CoderBackend, chat: Chat) -> str:
    title = unmention((chat.title or "Coder chat").replace("]", ")").replace("[", "("))
    archived = " · archived" if chat.archived else ""
    return f"• [{title}]({backend.chat_url(chat.id)}) · {chat.status.name}{archived}"
