"""How the relay reaches Slack: a small protocol, so the relay never imports Bolt or slack-sdk.

Errors are sorted by what the caller should do, like the Coder error tree:

    SlackError              base; ``code`` is Slack's error string (``channel_not_found`` …)
    ├── SlackRateLimited    429: wait ``retry_after`` seconds, then try again
    ├── SlackTransient      5xx, timeouts, ``internal_error``: retry with backoff
    └── SlackPermanent      the call can never succeed as made (archived channel, missing scope …)

A turn's status card may come with its ``Plan``: the same card in parts, for a poster that shows
tool calls natively (Slack's plan and task chunks) rather than as the card's text.

Agent Sessions have a port of their own (``AgentSessions``). Reading from Slack has two more ports:
``FileSource`` (a message's attached files, downloaded with the checks of ``bridge.slack.files``) and
``ThreadHistory`` (a thread's earlier messages).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bridge.relay.content import Plan
from bridge.relay.slots import PostTag


@dataclass
class SlackError(Exception):
    """A failed Slack Web API call."""

    code: str
    method: str = ""

    def __post_init__(self) -> None:
        super().__init__(f"{self.method}: {self.code}" if self.method else self.code)


@dataclass
class SlackRateLimited(SlackError):
    """Slack answered 429; ``retry_after`` is its ``Retry-After`` in seconds."""

    retry_after: float = 1.0


class SlackTransient(SlackError):
    """Slack or the network failed; the same call may succeed shortly."""


class SlackPermanent(SlackError):
    """The call cannot succeed as made; retrying would only repeat the error."""


@dataclass(frozen=True)
class Button:
    """A button under a message: ``action_id`` says what a click asks for (contracts: ``chat_stop``,
    ``queued_remove`` …), ``value`` which chat or queued message; a ``url`` button opens a page."""

    action_id: str
    text: str
    value: str = ""
    url: str | None = None
    style: str | None = None


class Whisperer(Protocol):
    """Private answers to one person (the outbox sends them within the workspace's budgets)."""

    async def whisper(self, channel: str, user: str, thread_ts: str | None, markdown: str) -> None:
        """Post an ephemeral message only ``user`` sees."""
        ...


class SlackPoster(Whisperer, Protocol):
    """The Slack writes the relay needs; every call goes through the outbox's pacing."""

    async def post(
        self,
        channel: str,
        thread_ts: str,
        markdown: str,
        *,
        key: PostTag,
        buttons: Sequence[Button] = (),
        plan: Plan | None = None,
    ) -> str:
        """Post Markdown text (with ``buttons`` under it) as a reply in a thread, tagged with ``key``
        (kept in the message's metadata, so ``tagged`` finds it again); returns the message's ``ts``.
        A status card comes with its ``plan``, which a poster may show instead of the text."""
        ...

    async def announce(self, channel: str, markdown: str, *, chat_id: str | None = None) -> str:
        """Post Markdown text as a new top-level message (a thread's root); returns its ``ts``. With
        ``chat_id`` it is tagged as the root of that chat's thread (``announced`` finds it)."""
        ...

    async def announced(self, channel: str, chat_id: str, *, oldest: str) -> str | None:
        """The ``ts`` of the bot's root tagged for ``chat_id`` posted in the channel since ``oldest``
        (a Slack ts), if any: a root whose ``ts`` a crash kept from being stored."""
        ...

    async def update(
        self,
        channel: str,
        ts: str,
        markdown: str,
        *,
        key: PostTag,
        buttons: Sequence[Button] = (),
        plan: Plan | None = None,
    ) -> None:
        """Replace the text, buttons (none: no buttons) and ``key`` tag of a message the bot posted
        (a status card: with its ``plan``, as for ``post``)."""
        ...

    async def react(self, channel: str, ts: str, name: str, *, on: bool) -> None:
        """Add (``on``) or remove the bot's reaction ``name`` on a message; already so is success."""
        ...

    async def tagged(self, channel: str, thread_ts: str) -> dict[PostTag, str]:
        """The bot's tagged messages in a thread: ``key`` -> ``ts``."""
        ...


class AgentSessions(Protocol):
    """A thread's Slack Agent Session (``agents.sessions.*``): the lifecycle status and title Slack
    shows for the thread, with a native Stop button while it is ``processing``."""

    async def set_status(
        self, channel: str, thread_ts: str, status: str, *, title: str | None, initiator: str | None
    ) -> None:
        """Set the status (``processing``, ``active``, ``suspended`` or ``closed``), creating the
        session if needed; ``title`` and ``initiator`` count only when it is created."""
        ...

    async def rename(self, channel: str, thread_ts: str, title: str) -> None:
        """Change the session's title."""
        ...


@dataclass(frozen=True)
class SlackUser:
    """What the access policy needs to know about a Slack user (from ``users.info``)."""

    id: str
    team_id: str
    is_restricted: bool = False
    """A multi-channel guest."""
    is_ultra_restricted: bool = False
    """A single-channel guest."""
    is_stranger: bool = False
    """Someone from another organisation met in a Slack Connect channel."""
    enterprise_id: str | None = None
    """The Enterprise Grid org of the person's account (``enterprise_user.enterprise_id``): people of
    every workspace of one org share it."""

    @property
    def is_guest(self) -> bool:
        """Guests of either kind."""
        return self.is_restricted or self.is_ultra_restricted


class SlackDirectory(Protocol):
    """Who people are in Slack: the lookups the access policy needs, cached by the implementation."""

    async def user(self, user_id: str) -> SlackUser | None:
        """The user, or None when Slack does not show them to the bot (``user_not_found``/``_visible``)."""
        ...

    async def group_members(self, group_id: str) -> frozenset[str]:
        """The members of a user group (``S…``); empty for an unknown or disabled group."""
        ...


@dataclass(frozen=True)
class SlackFile:
    """A file attached to a Slack message, as the event describes it (nothing is trusted yet)."""

    id: str
    name: str
    url: str
    """``url_private_download`` (or ``url_private``); empty for stubs and external files."""
    size: int = 0
    """What Slack declares; the download enforces the real size."""
    mode: str = "hosted"


@dataclass(frozen=True)
class FetchedFile:
    """A downloaded file whose bytes passed the content checks; ``media_type`` comes from the bytes."""

    name: str
    media_type: str
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class Upload:
    """An upload Slack began (``files.getUploadURLExternal``): the file's id and where its bytes go."""

    file_id: str
    url: str


class FileUploads(Protocol):
    """How the relay posts a file into a thread: Slack's external upload, one step a call, so a
    restart between the steps knows which one it reached."""

    async def begin(self, filename: str, length: int) -> Upload:
        """Step one: an upload of ``length`` bytes."""
        ...

    async def send(self, upload: Upload, data: bytes) -> None:
        """Step two: the bytes, to the upload's URL."""
        ...

    async def share(self, upload: Upload, title: str, channel: str, thread_ts: str) -> None:
        """Step three: the uploaded file, shared in the thread by one message of the bot."""
        ...

    async def shared_in(self, file_id: str, channel: str) -> bool:
        """Whether the file reached ``channel`` (``files.info``'s shares), after a restart."""
        ...


class FileRefused(Exception):
    """A file that is not relayed; the message says why, in words fit for the thread."""


class FileSource(Protocol):
    """Downloads Slack files the safe way (allowed hosts only, size cap, content sniffing)."""

    async def fetch(self, file: SlackFile) -> FetchedFile:
        """The file's bytes and real type; raises ``FileRefused`` with the reason otherwise."""
        ...


@dataclass(frozen=True)
class ThreadMessage:
    """An earlier message of a thread, for context: who wrote what, and its files."""

    ts: str
    user_id: str
    text: str
    files: tuple[SlackFile, ...] = ()
    from_bot: bool = False


class ThreadHistory(Protocol):
    """Reads a thread's messages (``conversations.replies``)."""

    async def thread(self, channel: str, thread_ts: str) -> list[ThreadMessage]:
        """The thread's messages, oldest first (a very long thread: its first page); raises ``SlackError``."""
        ...


class HomeTab(Protocol):
    """Publishes a person's App Home tab (``views.publish``)."""

    async def publish(self, user_id: str, view: Mapping[str, Any]) -> None:
        """Replace the person's Home view; raises ``SlackError``."""
        ...
