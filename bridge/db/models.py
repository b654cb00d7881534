"""SQLModel tables. Idempotency lives in their unique constraints, not in memory.

Schema changes need an Alembic revision in ``migrations/versions`` (the test suite fails on drift).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    true,
)
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """Timezone-aware now; every stored timestamp is UTC."""
    return datetime.now(UTC)


def _ts_column() -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=False)


class ThreadLink(SQLModel, table=True):
    """A Slack thread tied to a Coder chat.

    The row is written *before* the chat is created (``chat_id`` still empty), which claims the
    thread: a second mention or a retried event for the same thread finds the claim instead of
    creating a second chat.
    """

    __tablename__ = "thread_link"
    __table_args__ = (UniqueConstraint("team_id", "channel_id", "thread_ts", name="uq_thread_link_thread"),)

    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(max_length=32)
    """The workspace the thread is in."""
    enterprise_id: str | None = Field(default=None, max_length=32)
    """Its Enterprise Grid org (None off Grid): with ``team_id``, whose installation acts there."""
    channel_id: str = Field(max_length=32, index=True)
    thread_ts: str = Field(max_length=32)
    requester_user_id: str = Field(max_length=32)
    chat_id: str | None = Field(default=None, max_length=64, unique=True)
    status: str = Field(default="", max_length=32)
    phase: str = Field(default="starting", max_length=16)
    archived: bool = Field(default=False)
    shown_title: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    """The chat title the watcher last put in the header, so a restart re-renders only renamed chats."""
    chosen_title: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    """A title a person gave the thread's Agent Session that Coder could not take: the thread shows it
    instead of the chat's, whatever Coder renames the chat to later."""
    shown_diff: str = Field(default="", sa_column=Column(String(64), nullable=False, server_default=""))
    """Digest of the diff status the thread's PR summary was last rendered from."""
    sends_begun: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    """How many messages the bridge began sending to the chat. A stream stores its turn's ending (the
    chat idle) only if no send began since the stream did: else a crash right after that ending would
    leave the sent message's turn unfollowed at the next start."""
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts_column())


class StreamCursor(SQLModel, table=True):
    """The highest Coder message id whose Slack output is durable; a stream resumes after it."""

    __tablename__ = "stream_cursor"

    chat_id: str = Field(primary_key=True, max_length=64)
    after_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts_column())


class SeenEvent(SQLModel, table=True):
    """A Slack event taken in, recorded before Slack gets its ack; Slack's retries of it stop here.

    ``payload`` is kept until the event is handled (``done``), so one acknowledged just before a
    crash is handled after the restart instead of being lost. ``tag`` authenticates the id and
    payload (an HMAC under a key the database does not hold), so a row written or changed outside
    the bridge is never replayed as if Slack had sent it.
    """

    __tablename__ = "seen_event"

    event_id: str = Field(primary_key=True, max_length=64)
    received_at: datetime = Field(default_factory=utcnow, sa_column=_ts_column())
    payload: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    tag: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    done: bool = Field(default=True, sa_column=Column(Boolean, nullable=False, server_default=true()))
    replica: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    """The replica that took the event in and handles it; another replays it only once that one's
    lease (``replica:<id>``) has expired (it died or stopped before handling it)."""


class InboundMessage(SQLModel, table=True):
    """A person's Slack message relayed to a chat, and what Coder made of it.

    Unique per (channel, ts): Slack delivers a mention both as ``app_mention`` and as ``message``,
    and either may be retried; only the first claim is relayed.
    """

    __tablename__ = "inbound_message"
    __table_args__ = (UniqueConstraint("channel_id", "ts", name="uq_inbound_message_ts"),)

    id: int | None = Field(default=None, primary_key=True)
    link_id: int = Field(foreign_key="thread_link.id", index=True)
    channel_id: str = Field(max_length=32)
    ts: str = Field(max_length=32)
    user_id: str = Field(max_length=32)
    coder_message_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    queued_message_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    queued_digest: str | None = Field(default=None, max_length=64)
    """A digest of the queue entry's text while it waits: the user message Coder makes of it has that
    text, which is how a start after a restart tells the agent took it (``find_queued_by_text``)."""
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts_column())


class SlackMessage(SQLModel, table=True):
    """A message the bridge posted in a thread, by slot (e.g. ``msg:42`` for Coder message 42).

    Knowing the ``ts`` of every slot turns a repeated output into an edit, never a second post.
    ``digest`` is a hash of the last text sent, so an unchanged replay costs no Slack call.
    """

    __tablename__ = "slack_message"
    __table_args__ = (UniqueConstraint("link_id", "slot", name="uq_slack_message_slot"),)

    id: int | None = Field(default=None, primary_key=True)
    link_id: int = Field(foreign_key="thread_link.id", index=True)
    slot: str = Field(max_length=64)
    ts: str = Field(max_length=32)
    digest: str = Field(default="", max_length=64)
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts_column())


class UserLink(SQLModel, table=True):
    """A Slack user's own Coder account (linked identity mode), with their token encrypted.

    ``token_ciphertext`` is a Fernet token: the plain Coder token never reaches the database.
    ``broken`` is set when Coder refused the token (revoked or expired); the user links again.
    """

    __tablename__ = "user_link"
    __table_args__ = (UniqueConstraint("team_id", "slack_user_id", name="uq_user_link_user"),)

    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(max_length=32)
    slack_user_id: str = Field(max_length=32)
    coder_user_id: str = Field(max_length=64)
    coder_username: str = Field(max_length=128)
    token_ciphertext: str = Field(sa_column=Column(Text, nullable=False))
    broken: bool = Field(default=False)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts_column())


class LinkAttempt(SQLModel, table=True):
    """A token someone submitted to ``/coder link`` that the bridge checked with Coder.

    Kept for ``BRIDGE_LINK_ATTEMPT_WINDOW`` so the checks per person are counted across restarts and
    replicas: Coder's answer tells a valid token from an invalid one, and unthrottled it would let
    anyone guess tokens through the bridge.
    """

    __tablename__ = "link_attempt"

    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(max_length=32)
    slack_user_id: str = Field(max_length=32, index=True)
    attempted_at: datetime = Field(default_factory=utcnow, sa_column=_ts_column())


class AgentFile(SQLModel, table=True):
    """A file the agent attached to its chat (a ``file`` part with a Coder file id), to be posted
    into the chat's thread exactly once.

    Stored with the stream cursor that passes the message naming it, so a crash either replays that
    message or finds the row. ``state`` is "pending" until an upload begins, "uploading" once Slack
    gave the upload its ``slack_file_id`` (a restart then asks Slack whether the file reached the
    thread before it uploads again), and "done" once the file is in the thread or a line there says
    why it is not.
    """

    __tablename__ = "agent_file"
    __table_args__ = (UniqueConstraint("link_id", "coder_file_id", name="uq_agent_file"),)

    id: int | None = Field(default=None, primary_key=True)
    link_id: int = Field(foreign_key="thread_link.id", index=True)
    coder_file_id: str = Field(max_length=64)
    name: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    media_type: str = Field(default="", max_length=128)
    state: str = Field(default="pending", max_length=16, index=True)
    slack_file_id: str = Field(default="", max_length=32)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts_column())


class AisdkChat(SQLModel, table=True):
    """A chat of Coder's 2025 AI-SDK API, whose chats carry no labels: the bridge keeps them here.

    Written right after the chat is created and before its first message goes out, so a creation
    a crash cut short is found again by its labels (``started`` still false) and finished instead
    of repeated. ``replying`` says a reply was streaming to the bridge, which a stop cuts off.
    """

    __tablename__ = "legacy_chat"  # the AI-SDK API was once called "legacy"; existing databases keep the name

    chat_id: str = Field(primary_key=True, max_length=64)
    labels: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    started: bool = Field(default=False)
    replying: bool = Field(default=False)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts_column())


class OutboxEntry(SQLModel, table=True):
    """A text a thread slot must show, kept until Slack shows it (the durable half of the outbox).

    One row per (link, slot): a newer text replaces the older one, so only the latest is ever
    delivered. The row is deleted once Slack shows that text (the delete names the ``digest`` it
    delivered, so a text set meanwhile survives it); a row Slack refuses for good (channel gone,
    bot removed) is kept with ``state`` "failed" and the reason, for the operator.
    """

    __tablename__ = "outbox"
    __table_args__ = (UniqueConstraint("link_id", "slot", name="uq_outbox_slot"),)

    id: int | None = Field(default=None, primary_key=True)
    link_id: int = Field(foreign_key="thread_link.id", index=True)
    slot: str = Field(max_length=64)
    text: str = Field(sa_column=Column(Text, nullable=False))
    buttons: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    """The buttons under the text (JSON), durable with it; its ``digest`` covers both."""
    final: bool = Field(default=True)
    digest: str = Field(max_length=64)
    state: str = Field(default="pending", max_length=16)
    error: str = Field(default="", max_length=64)
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts_column())


class OutboxReaction(SQLModel, table=True):
    """The bridge's reactions of one kind (``role``) wished on a message, kept until Slack shows them.

    Written in the transaction that decides them (a turn's end with the stream's cursor, a follow-up
    leaving the queue with its row), so a crash right after cannot leave 👀 on a finished turn: the
    outbox replays the rows left at start. ``names`` and ``among`` are JSON lists of emoji names: the
    ones wanted on the message, and every one the role may have put there (those not wanted come off).
    """

    __tablename__ = "outbox_reaction"
    __table_args__ = (UniqueConstraint("link_id", "ts", "role", name="uq_outbox_reaction"),)

    id: int | None = Field(default=None, primary_key=True)
    link_id: int = Field(foreign_key="thread_link.id", index=True)
    ts: str = Field(max_length=32)
    role: str = Field(max_length=16)
    names: str = Field(sa_column=Column(Text, nullable=False))
    among: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts_column())


class AisdkFollowUp(SQLModel, table=True):
    """A follow-up held while a reply streams (Coder's 2025 API has no queue); sent in ``id`` order.

    ``content`` is the message's input parts as JSON; the row goes once Coder has the message.
    """

    __tablename__ = "legacy_follow_up"  # named like ``legacy_chat``

    id: int | None = Field(default=None, primary_key=True)
    chat_id: str = Field(max_length=64, index=True)
    content: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts_column())


class HomeViewer(SQLModel, table=True):
    """Someone who opened the App Home tab, on whichever replica: the replica that watches Coder
    republishes their tab when one of their chats changes (replicas on PostgreSQL only)."""

    __tablename__ = "home_viewer"

    user_id: str = Field(primary_key=True, max_length=32)
    opened_at: datetime = Field(default_factory=utcnow, sa_column=_ts_column())


class Lease(SQLModel, table=True):
    """Work that exactly one replica does at a time, and which one does it (PostgreSQL only).

    A replica holds a lease while its heartbeat renews ``expires_at``; once that passes, another may
    take it over, which raises ``epoch``. A write that must come from the holder only (a chat's
    cursor with its texts) checks holder and epoch in its own transaction, locking the row, so a
    replica that lost the lease writes nothing. ``wanted`` asks the holder to hand the lease on
    when it lets go (a replica needed it meanwhile): expired instead of deleted, it is taken over.
    """

    __tablename__ = "lease"

    name: str = Field(primary_key=True, max_length=128)
    holder: str = Field(max_length=32)
    epoch: int = Field(sa_column=Column(BigInteger, nullable=False))
    wanted: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=false()))
    expires_at: datetime = Field(sa_column=_ts_column())


class Replica(SQLModel, table=True):
    """A running bridge process, under the id it drew at start, and its last sign of life.

    Replicas on one database share Slack's per-workspace budgets: each uses its share, one over the
    replicas of its workspace whose heartbeat is recent. A replica that stops deletes its row; one
    that dies stops counting once its heartbeat is old.
    """

    __tablename__ = "replica"

    replica_id: str = Field(primary_key=True, max_length=32)
    team_id: str = Field(max_length=32, index=True)
    heartbeat_at: datetime = Field(default_factory=utcnow, sa_column=_ts_column())


class SlackPace(SQLModel, table=True):
    """What the bridge learned of a Slack budget Slack publishes no number for, per workspace and
    method: the pace to use and the pace Slack refused (``ceiling``, none while it refused none).

    Kept so a restart or another replica starts from what was learned, not from the guard again.
    """

    __tablename__ = "slack_pace"

    team_id: str = Field(primary_key=True, max_length=32)
    method: str = Field(primary_key=True, max_length=64)
    per_minute: float = Field(sa_column=Column(Float, nullable=False))
    ceiling: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts_column())


class SlackInstallation(SQLModel, table=True):
    """The app installed into a Slack workspace or org (OAuth distribution), one row per installer.

    Keyed like slack-sdk's own stores: ``enterprise_id``, ``team_id`` and the installing ``user_id``,
    stored as ``""`` when Slack gives none (so the unique constraint holds: NULLs never conflict). An
    org-wide install has ``team_id`` ``""`` and ``is_enterprise_install``. The workspace's bot is the
    same on every row of it; ``bot_token_ciphertext`` is empty once the bot's token was revoked.
    Every token is a ``relay.cipher`` ciphertext bound to its purpose and workspace: no plain token
    reaches the database.
    """

    __tablename__ = "slack_installation"
    __table_args__ = (
        UniqueConstraint("enterprise_id", "team_id", "user_id", name="uq_slack_installation_installer"),
    )

    id: int | None = Field(default=None, primary_key=True)
    enterprise_id: str = Field(default="", max_length=32)
    team_id: str = Field(default="", max_length=32)
    user_id: str = Field(default="", max_length=32)
    is_enterprise_install: bool = Field(default=False)
    app_id: str = Field(default="", max_length=32)
    enterprise_name: str = Field(default="", max_length=256)
    enterprise_url: str = Field(default="", max_length=256)
    team_name: str = Field(default="", max_length=256)
    token_type: str = Field(default="", max_length=16)
    bot_id: str = Field(default="", max_length=32)
    bot_user_id: str = Field(default="", max_length=32)
    bot_scopes: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    bot_token_ciphertext: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    bot_refresh_ciphertext: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    bot_token_expires_at: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    user_scopes: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    user_token_ciphertext: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    user_refresh_ciphertext: str = Field(
        default="", sa_column=Column(Text, nullable=False, server_default="")
    )
    user_token_expires_at: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    installed_at: datetime = Field(default_factory=utcnow, sa_column=_ts_column())


class SlackOAuthState(SQLModel, table=True):
    """An OAuth ``state`` the bridge handed to a browser at ``/slack/install``, until it comes back.

    Consumed by deleting it (the database says which request was first, across replicas); one past
    ``expires_at`` no longer counts and is swept with the next issue.
    """

    __tablename__ = "slack_oauth_state"

    state: str = Field(primary_key=True, max_length=64)
    expires_at: datetime = Field(sa_column=_ts_column())
