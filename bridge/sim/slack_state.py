"""The simulated Slack workspace: users, conversations, messages, files, and their Slack JSON shapes.

State is plain dataclasses so tests can read it directly; the ``*_json`` functions turn it into the
objects Slack puts on the wire (reference sections 2-4), so the Web API, event payloads and
interaction payloads all describe a message the same way.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

JsonDict = dict[str, Any]

TEAM_ID = "T0001"
TEAM_NAME = "Example"
TEAM_DOMAIN = "example"
BOT_USER_ID = "U0BOT"
BOT_ID = "B0BOT"
APP_ID = "A0APP"
BOT_NAME = "coder-agents"
ALICE = "U0ALICE"
BOB = "U0BOB"
GENERAL = "C0GENERAL"
RANDOM = "C0RANDOM"
ALICE_DM = "D0ALICE"
SLACKBOT = "USLACKBOT"

# Scopes of the example manifest in the reference (section 7).
DEFAULT_SCOPES = (
    "app_mentions:read",
    "assistant:write",
    "channels:history",
    "channels:read",
    "chat:write",
    "commands",
    "files:read",
    "files:write",
    "groups:history",
    "groups:read",
    "im:history",
    "im:read",
    "im:write",
    "mpim:history",
    "reactions:read",
    "reactions:write",
    "users:read",
    "usergroups:read",  # not in the reference's example; the bridge's manifest asks for it
)

TRIGGER_LIFETIME = 3.0
"""Seconds a ``trigger_id`` can open a modal (reference 8.1); real seconds, not time-scaled."""
MAX_MODAL_TITLE = 24

ChannelKind = Literal["public", "private", "im", "mpim"]

# Inner ``channel_type`` of message events, and the event subscription that carries them.
CHANNEL_TYPE: dict[ChannelKind, str] = {"public": "channel", "private": "group", "im": "im", "mpim": "mpim"}
MESSAGE_SUBSCRIPTION: dict[ChannelKind, str] = {
    "public": "message.channels",
    "private": "message.groups",
    "im": "message.im",
    "mpim": "message.mpim",
}
# Scope prefix of the conversations.* family per kind: channels:history, groups:read, ...
SCOPE_FAMILY: dict[ChannelKind, str] = {"public": "channels", "private": "groups", "im": "im", "mpim": "mpim"}

_FILETYPES: dict[str, tuple[str, str]] = {
    "text/plain": ("text", "Plain Text"),
    "text/markdown": ("markdown", "Markdown (raw)"),
    "text/x-python": ("python", "Python"),
    "application/json": ("json", "JSON"),
    "application/pdf": ("pdf", "PDF"),
    "application/zip": ("zip", "Zip"),
    "image/png": ("png", "PNG"),
    "image/jpeg": ("jpg", "JPEG"),
    "image/gif": ("gif", "GIF"),
    "image/webp": ("webp", "WebP"),
}


_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"%PDF-", "application/pdf"),
)
_EXTENSIONS: dict[str, str] = {"md": "text/markdown", "json": "application/json", "webp": "image/webp"}


def _sniffed(content: bytes, filename: str) -> str:
    """The type Slack gives an uploaded file: by its bytes, else by its name, else text or binary.
    UNCERTAIN: Slack's own detection is unpublished; this reads the common magic numbers."""
    for magic, mimetype in _MAGIC:
        if content.startswith(magic):
            return mimetype
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if extension in _EXTENSIONS:
        return _EXTENSIONS[extension]
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream"
    return "text/plain"


class TsClock:
    """Hands out message timestamps ``"{unix}.{6-digit seq}"``, strictly increasing.

    Slack's ``ts`` is the identity of a message and sorts chronologically; the sequence restarts each
    second and borrows the next second if a million messages arrive within one.
    """

    def __init__(self) -> None:
        self._second = 0
        self._seq = 0

    def next(self) -> str:
        """A fresh ts, greater than every ts handed out before."""
        now = int(time.time())
        if now > self._second:
            self._second, self._seq = now, 1
        elif self._seq < 999_999:
            self._seq += 1
        else:
            self._second, self._seq = self._second + 1, 1
        return f"{self._second}.{self._seq:06d}"


@dataclass
class SimUser:
    """A member of the workspace (or, with another ``team_id``, an external Slack Connect user)."""

    id: str
    name: str
    real_name: str
    team_id: str = TEAM_ID
    is_bot: bool = False
    bot_id: str | None = None
    is_restricted: bool = False
    is_ultra_restricted: bool = False
    email: str | None = None
    tz: str = "Europe/Berlin"
    tz_offset: int = 3600


@dataclass
class SimChannel:
    """A conversation: public or private channel, DM (``im``) or group DM (``mpim``)."""

    id: str
    name: str
    kind: ChannelKind
    members: set[str]
    is_ext_shared: bool = False
    is_archived: bool = False
    is_general: bool = False
    im_user: str | None = None
    created: int = 1_600_000_000
    creator: str = ALICE
    team: str = TEAM_ID
    """The workspace the conversation belongs to (of the org's, when the simulator hosts several)."""

    @property
    def channel_type(self) -> str:
        """The ``channel_type`` Slack puts on message events from this conversation."""
        return CHANNEL_TYPE[self.kind]


@dataclass
class SimMessage:
    """One stored message. Its *visible text* is ``markdown_text`` when given, else ``text``."""

    channel: str
    ts: str
    text: str = ""
    user: str | None = None
    bot_id: str | None = None
    blocks: list[JsonDict] = field(default_factory=list)
    markdown_text: str | None = None
    thread_ts: str | None = None
    subtype: str | None = None
    files: list[JsonDict] = field(default_factory=list)
    reactions: dict[str, list[str]] = field(default_factory=dict)
    edited_ts: str | None = None
    edited_by: str | None = None
    deleted: bool = False
    streaming: bool = False
    chunks: list[JsonDict] = field(default_factory=list)
    metadata: JsonDict | None = None
    client_msg_id: str | None = None
    team: str = TEAM_ID

    @property
    def visible_text(self) -> str:
        """What a reader sees: ``markdown_text`` if the message was posted with it, else ``text``."""
        return self.markdown_text if self.markdown_text is not None else self.text

    @property
    def notifies(self) -> frozenset[str]:
        """Whom Slack notifies for this message: the people (``U…``), broadcasts (``@channel``,
        ``@here``, ``@everyone``) and user groups (``S…``) its texts name by control sequence."""
        texts = [self.text, self.markdown_text or ""]
        texts += [str(b.get("text", "")) for b in self.blocks if b.get("type") == "markdown"]
        return frozenset(name for text in texts for name in notified(text))

    @property
    def edited(self) -> bool:
        """Whether the message was changed after posting."""
        return self.edited_ts is not None

    @property
    def is_reply(self) -> bool:
        """A reply carries the ts of its thread's root, which differs from its own."""
        return self.thread_ts is not None and self.thread_ts != self.ts


Compression = Literal["never", "accepted", "always"]
"""How a file host sends a file: as stored, gzip when the request accepts it, or gzip whatever the
request asked (a misbehaving proxy)."""


@dataclass
class SimFile:
    """An uploaded file; ``redirect_to`` makes authorised downloads redirect to another host (a CDN)."""

    id: str
    name: str
    mimetype: str
    content: bytes
    user: str
    created: int
    redirect_to: str | None = None
    gzip: Compression = "never"
    title: str = ""
    shares: dict[str, list[JsonDict]] = field(default_factory=dict)
    """Where the file was shared (``files.completeUploadExternal``): channel id -> its messages."""


@dataclass
class PendingUpload:
    """An upload ``files.getUploadURLExternal`` began: the bytes its URL received, once they came."""

    file_id: str
    filename: str
    length: int
    alt_txt: str = ""
    content: bytes | None = None


@dataclass
class Ephemeral:
    """An ephemeral message: seen by one user only, never in history, never an event."""

    channel: str
    user: str
    ts: str
    text: str
    blocks: list[JsonDict]
    markdown_text: str | None
    thread_ts: str | None


@dataclass
class SimUserGroup:
    """A user group (``S…``); ``usergroups.users.list`` names its members."""

    id: str
    handle: str
    users: list[str]
    enabled: bool = True


@dataclass
class Trigger:
    """A ``trigger_id`` handed to the app with an interaction: one modal, within 3 seconds."""

    user: str
    issued_at: float
    exchanged: bool = False


@dataclass
class AgentSession:
    """An Agent Session (reference 12.2) of one thread, or of a whole code channel when thread_ts is None."""

    channel_id: str
    thread_ts: str | None
    status: str
    title: str | None
    initiator_user_id: str | None
    history: list[str] = field(default_factory=list)


class Workspace:
    """The team the simulator hosts, with the default users and conversations of the brief; with
    ``add_team``, the several workspaces of one Enterprise Grid org (``enterprise_id``), ``team_id``
    the first of them."""

    def __init__(self) -> None:
        self.team_id = TEAM_ID
        self.team_name = TEAM_NAME
        self.domain = TEAM_DOMAIN
        self.enterprise_id: str | None = None
        """The Enterprise Grid org the workspaces belong to; None: a workspace off Grid."""
        self.teams: dict[str, str] = {TEAM_ID: TEAM_NAME}
        """The org's workspaces (off Grid: separate workspaces, the app installed into each), by id:
        their name."""
        self.bots: dict[str, tuple[str, str]] = {}
        """The app's bot user and bot id in workspaces where it has a bot of its own (installed into
        them one by one through OAuth), by team; elsewhere ``BOT_USER_ID`` and ``BOT_ID``."""
        self.clock = TsClock()
        self.base_url = ""  # set when the server is listening; file URLs point at it
        self.users: dict[str, SimUser] = {}
        self.channels: dict[str, SimChannel] = {}
        self.messages: dict[str, dict[str, SimMessage]] = {}
        self.files: dict[str, SimFile] = {}
        self.uploads: dict[str, PendingUpload] = {}
        """Uploads begun and not completed, by the secret key of their upload URL."""
        self.ephemerals: list[Ephemeral] = []
        self.home_views: dict[str, JsonDict] = {}
        self.agent_sessions: dict[tuple[str, str | None], AgentSession] = {}
        self.assistant_status: dict[tuple[str, str], str] = {}
        self.usergroups: dict[str, SimUserGroup] = {}
        self.triggers: dict[str, Trigger] = {}
        self.modals: dict[str, list[JsonDict]] = {}  # user -> open modal views, the top one last
        self.view_errors: dict[str, dict[str, str]] = {}  # user -> field errors shown on their modal
        self._file_seq = 0
        self.add_user(ALICE, "alice", real_name="Alice A", email="alice@example.com")
        self.add_user(BOB, "bob", real_name="Bob B", email="bob@example.com")
        self.add_user(BOT_USER_ID, BOT_NAME, real_name="Coder Agents", is_bot=True, bot_id=BOT_ID)
        self.add_channel(GENERAL, "general", members=(ALICE, BOB, BOT_USER_ID), is_general=True)
        self.add_channel(RANDOM, "random", members=(ALICE, BOB))
        self.add_im(ALICE, channel_id=ALICE_DM)

    def add_user(
        self,
        user_id: str,
        name: str,
        *,
        real_name: str | None = None,
        team_id: str | None = None,
        is_bot: bool = False,
        bot_id: str | None = None,
        is_restricted: bool = False,
        is_ultra_restricted: bool = False,
        email: str | None = None,
    ) -> SimUser:
        """Add a user; ``team_id`` other than the workspace's makes an external (Slack Connect) user."""
        user = SimUser(
            id=user_id,
            name=name,
            real_name=real_name or name,
            team_id=team_id or self.team_id,
            is_bot=is_bot,
            bot_id=bot_id,
            is_restricted=is_restricted,
            is_ultra_restricted=is_ultra_restricted,
            email=email,
        )
        self.users[user_id] = user
        return user

    def add_team(self, team_id: str, name: str) -> None:
        """Add a workspace: to the org on Grid, else a separate workspace beside the first."""
        self.teams[team_id] = name

    def add_bot(self, team_id: str, user_id: str, bot_id: str) -> None:
        """The app was installed into ``team_id`` with a bot of its own (an OAuth install)."""
        self.bots[team_id] = (user_id, bot_id)
        self.add_user(
            user_id, BOT_NAME, real_name="Coder Agents", team_id=team_id, is_bot=True, bot_id=bot_id
        )

    def bot_of(self, team_id: str) -> tuple[str, str]:
        """The app's bot user and bot id in workspace ``team_id``."""
        return self.bots.get(team_id, (BOT_USER_ID, BOT_ID))

    def is_app_bot(self, user_id: str | None) -> bool:
        """Whether the user is one of the app's bot users, in any workspace."""
        return user_id == BOT_USER_ID or any(user_id == user for user, _ in self.bots.values())

    def is_own(self, message: SimMessage) -> bool:
        """Whether the app itself posted the message, in any workspace."""
        return message.bot_id == BOT_ID or any(message.bot_id == bot for _, bot in self.bots.values())

    def in_org(self, user: SimUser) -> bool:
        """Whether the user belongs to one of the hosted workspaces (else a Slack Connect partner)."""
        return user.team_id in self.teams

    def add_channel(
        self,
        channel_id: str,
        name: str,
        *,
        kind: ChannelKind = "public",
        members: Iterable[str] = (ALICE, BOB, BOT_USER_ID),
        is_ext_shared: bool = False,
        is_archived: bool = False,
        is_general: bool = False,
        team: str | None = None,
    ) -> SimChannel:
        """Add a conversation (to workspace ``team``, the first by default); the bot is a member only
        when ``BOT_USER_ID`` is in ``members``."""
        if team is not None and team not in self.teams:
            raise ValueError(f"no workspace {team} in the org")
        channel = SimChannel(
            id=channel_id,
            name=name,
            kind=kind,
            members=set(members),
            is_ext_shared=is_ext_shared,
            is_archived=is_archived,
            is_general=is_general,
            team=team or self.team_id,
        )
        self.channels[channel_id] = channel
        self.messages.setdefault(channel_id, {})
        return channel

    def add_im(self, user_id: str, *, channel_id: str | None = None) -> SimChannel:
        """Open (or return) the DM between ``user_id`` and the bot."""
        existing = self.im_of(user_id)
        if existing is not None:
            return existing
        user = self.users.get(user_id)
        team = user.team_id if user is not None and self.in_org(user) else None
        channel = self.add_channel(
            channel_id or "D" + user_id[1:],
            "",
            kind="im",
            members=(user_id, self.bot_of(team or self.team_id)[0]),
            team=team,
        )
        channel.im_user = user_id
        return channel

    def im_of(self, user_id: str) -> SimChannel | None:
        """The bot's DM with ``user_id``, if one is open."""
        return next((c for c in self.channels.values() if c.kind == "im" and c.im_user == user_id), None)

    def add_file(
        self,
        content: bytes,
        name: str,
        mimetype: str,
        *,
        user: str,
        redirect_to: str | None = None,
        gzip: Compression = "never",
    ) -> SimFile:
        """Store an uploaded file and return it."""
        file = SimFile(
            id=self.next_file_id(),
            name=name,
            mimetype=mimetype,
            content=content,
            user=user,
            created=int(time.time()),
            redirect_to=redirect_to,
            gzip=gzip,
        )
        self.files[file.id] = file
        return file

    def next_file_id(self) -> str:
        """The id of the next file: every file, however it came, numbered in one sequence."""
        self._file_seq += 1
        return f"F0SIM{self._file_seq:06d}"

    def add_uploaded(self, upload: PendingUpload, *, title: str, user: str) -> SimFile:
        """A completed external upload as a file, under the id its upload was given."""
        assert upload.content is not None
        file = SimFile(
            id=upload.file_id,
            name=upload.filename,
            mimetype=_sniffed(upload.content, upload.filename),
            content=upload.content,
            user=user,
            created=int(time.time()),
            title=title,
        )
        self.files[file.id] = file
        return file

    def store(self, message: SimMessage) -> SimMessage:
        """Add a message to its channel's history."""
        self.messages[message.channel][message.ts] = message
        return message

    def message(self, channel: str, ts: str) -> SimMessage | None:
        """The message with this ts (deleted ones included, so callers can tell "gone" from "never")."""
        return self.messages.get(channel, {}).get(ts)

    def thread(self, channel: str, thread_ts: str) -> list[SimMessage]:
        """Root then replies, oldest first, without deleted messages."""
        found = [
            m
            for m in self.messages.get(channel, {}).values()
            if not m.deleted and (m.ts == thread_ts or m.thread_ts == thread_ts)
        ]
        return sorted(found, key=lambda m: (m.ts != thread_ts, m.ts))

    def tombstone(self, root: SimMessage) -> None:
        """What deleting a root that has replies leaves: Slackbot's hidden placeholder, in its place
        and keeping the thread."""
        root.subtype, root.user, root.text = "tombstone", SLACKBOT, "This message was deleted."
        root.blocks, root.files, root.markdown_text, root.thread_ts = [], [], None, root.ts

    def replies(self, root: SimMessage) -> list[SimMessage]:
        """Live replies of a root message, oldest first."""
        return [m for m in self.thread(root.channel, root.ts) if m.ts != root.ts]

    def is_member(self, channel: SimChannel, user_id: str | None = None) -> bool:
        """Whether the user (by default the app's bot of the conversation's workspace) belongs to it."""
        return (user_id or self.bot_of(channel.team)[0]) in channel.members

    def display_name(self, user_id: str | None) -> str:
        """How a transcript names an author: "bot" for the app, else the user's handle."""
        if user_id is None:
            return "?"
        if self.is_app_bot(user_id):
            return "bot"
        user = self.users.get(user_id)
        return user.name if user else user_id

    def bot_profile(self) -> JsonDict:
        """The ``bot_profile`` object Slack attaches to the app's messages."""
        return {
            "id": BOT_ID,
            "app_id": APP_ID,
            "name": BOT_NAME,
            "icons": {"image_48": "https://a.slack-edge.com/sim/bot_48.png"},
            "deleted": False,
            "updated": 1_732_000_000,
            "team_id": self.team_id,
        }

    def user_json(self, user: SimUser) -> JsonDict:
        """A user object as ``users.info`` returns it (external users get no email)."""
        profile: JsonDict = {
            "display_name": user.name,
            "real_name": user.real_name,
            "image_48": f"https://avatars.slack-edge.com/sim/{user.id}_48.png",
            "team": user.team_id,
        }
        if user.email is not None and self.in_org(user):
            profile["email"] = user.email
        if user.bot_id is not None:
            profile["bot_id"] = user.bot_id
        return {
            "id": user.id,
            "team_id": user.team_id,
            "name": user.name,
            "deleted": False,
            "real_name": user.real_name,
            "tz": user.tz,
            "tz_offset": user.tz_offset,
            "is_admin": False,
            "is_owner": False,
            "is_bot": user.is_bot,
            "is_app_user": False,
            "is_restricted": user.is_restricted,
            "is_ultra_restricted": user.is_ultra_restricted,
            "is_stranger": not self.in_org(user),
            "updated": 1_732_000_000,
            "profile": profile,
        } | self._enterprise_user(user)

    def _enterprise_user(self, user: SimUser) -> JsonDict:
        """On Grid, an org member's ``enterprise_user`` (its org, and the workspaces it is in)."""
        if self.enterprise_id is None or not self.in_org(user):
            return {}
        return {
            "enterprise_user": {
                "id": user.id,
                "enterprise_id": self.enterprise_id,
                "enterprise_name": "Example Org",
                "is_admin": False,
                "is_owner": False,
                "teams": [user.team_id],
            }
        }

    def channel_json(self, channel: SimChannel) -> JsonDict:
        """A conversation object as ``conversations.info`` returns it."""
        empty_text = {"value": "", "creator": "", "last_set": 0}
        data: JsonDict = {
            "id": channel.id,
            "created": channel.created,
            "is_channel": channel.kind == "public",
            "is_group": channel.kind == "private",
            "is_im": channel.kind == "im",
            "is_mpim": channel.kind == "mpim",
            "is_private": channel.kind != "public",
            "is_archived": channel.is_archived,
            "is_member": self.is_member(channel),
            "is_shared": channel.is_ext_shared,
            "is_ext_shared": channel.is_ext_shared,
            "is_org_shared": False,
            "context_team_id": channel.team,
        }
        if channel.kind == "im":
            data["user"] = channel.im_user
            return data
        data.update(
            name=channel.name,
            is_general=channel.is_general,
            creator=channel.creator,
            topic=dict(empty_text),
            purpose=dict(empty_text),
        )
        return data

    def file_json(self, file: SimFile) -> JsonDict:
        """A file object (reference 3.1) whose URLs point at this simulator."""
        filetype, pretty = _FILETYPES.get(file.mimetype, ("binary", "Binary"))
        key = f"{self.team_id}-{file.id}"
        return {
            "id": file.id,
            "created": file.created,
            "timestamp": file.created,
            "name": file.name,
            "title": file.title or file.name,
            "mimetype": file.mimetype,
            "filetype": filetype,
            "pretty_type": pretty,
            "user": file.user,
            "user_team": self.users[file.user].team_id if file.user in self.users else self.team_id,
            "size": len(file.content),
            "mode": "hosted",
            "is_external": False,
            "external_type": "",
            "is_public": True,
            "public_url_shared": False,
            "url_private": f"{self.base_url}/files-pri/{key}/{file.name}",
            "url_private_download": f"{self.base_url}/files-pri/{key}/download/{file.name}",
            "permalink": f"https://{self.domain}.slack.com/files/{file.user}/{file.id}/{file.name}",
            **self._shares_json(file),
        }

    def _shares_json(self, file: SimFile) -> JsonDict:
        """Where a file is shared (file object ``channels``/``groups``/``ims`` and ``shares``, public or
        private by the channel's kind); nothing for a file shared nowhere."""
        if not file.shares:
            return {}
        shares: dict[str, JsonDict] = {}
        for channel_id, posts in file.shares.items():
            public = channel_id in self.channels and self.channels[channel_id].kind == "public"
            shares.setdefault("public" if public else "private", {})[channel_id] = list(posts)
        channels = [c for c in file.shares if c in self.channels and self.channels[c].kind == "public"]
        return {"channels": channels, "shares": shares}

    def message_json(self, message: SimMessage, *, thread_summary: bool = False) -> JsonDict:
        """A message as the Web API and events show it; ``thread_summary`` adds a root's reply stats."""
        data: JsonDict = {"type": "message"}
        if message.subtype is not None:
            data["subtype"] = message.subtype
        if message.subtype == "tombstone":
            data["hidden"] = True
        data["text"] = message.visible_text
        if message.user is not None:
            data["user"] = message.user
        if message.bot_id is not None:
            data.update(bot_id=message.bot_id, app_id=APP_ID, bot_profile=self.bot_profile())
        data.update(ts=message.ts, team=message.team, blocks=list(message.blocks))
        if message.client_msg_id is not None:
            data["client_msg_id"] = message.client_msg_id
        if message.thread_ts is not None:
            data["thread_ts"] = message.thread_ts
            root = self.message(message.channel, message.thread_ts)
            if message.is_reply and root is not None and root.user is not None:
                data["parent_user_id"] = root.user
        if message.files:
            data.update(files=list(message.files), upload=False, display_as_bot=False)
        if message.edited_ts is not None:
            data["edited"] = {"user": message.edited_by, "ts": message.edited_ts}
        if message.reactions:
            data["reactions"] = [
                {"name": name, "users": list(users), "count": len(users)}
                for name, users in message.reactions.items()
            ]
        if message.metadata is not None:
            data["metadata"] = message.metadata
        if thread_summary and not message.is_reply:
            replies = self.replies(message)
            if replies:
                reply_users = list(dict.fromkeys(r.user for r in replies if r.user is not None))
                data.update(
                    thread_ts=message.ts,
                    reply_count=len(replies),
                    reply_users=reply_users,
                    reply_users_count=len(reply_users),
                    latest_reply=replies[-1].ts,
                    is_locked=False,
                    subscribed=False,
                )
        return data


_NOTIFYING = re.compile(
    r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>|<!(channel|here|everyone|group)(?:\|[^>]*)?>|<!subteam\^([A-Z0-9]+)(?:\|[^>]*)?>"
)


def notified(text: str) -> set[str]:
    """Whom a text notifies as Slack reads it: ``<@U…>`` a person, ``<!channel>``, ``<!here>``,
    ``<!everyone>`` (``<!group>`` is the old ``<!channel>``) a channel, ``<!subteam^S…>`` a group."""
    found: set[str] = set()
    for user, broadcast, group in _NOTIFYING.findall(text):
        found.add(user or group or "@" + broadcast.replace("group", "channel"))
    return found


_RICH_TOKEN = re.compile(r"<@([UW][A-Z0-9]+)>|<#(C[A-Z0-9]+)(?:\|[^>]*)?>|<(https?://[^|>]+)(?:\|([^>]*))?>")


def rich_text_blocks(text: str) -> list[JsonDict]:
    """The ``rich_text`` block a Slack client attaches to a typed message (mentions, channels, links)."""
    elements: list[JsonDict] = []
    position = 0
    for match in _RICH_TOKEN.finditer(text):
        if match.start() > position:
            elements.append({"type": "text", "text": text[position : match.start()]})
        user_id, channel_id, url, label = match.groups()
        if user_id:
            elements.append({"type": "user", "user_id": user_id})
        elif channel_id:
            elements.append({"type": "channel", "channel_id": channel_id})
        else:
            link: JsonDict = {"type": "link", "url": url}
            if label:
                link["text"] = label
            elements.append(link)
        position = match.end()
    if position < len(text):
        elements.append({"type": "text", "text": text[position:]})
    block_id = uuid.uuid4().hex[:5]
    return [
        {
            "type": "rich_text",
            "block_id": block_id,
            "elements": [{"type": "rich_text_section", "elements": elements}],
        }
    ]
