"""Initial schema: thread links, stream cursors, seen events, inbound and posted Slack messages.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 12:46:20.729801
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "seen_event",
        sa.Column("event_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_table(
        "stream_cursor",
        sa.Column("chat_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("after_id", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chat_id"),
    )
    op.create_table(
        "thread_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("channel_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("thread_ts", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("requester_user_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("chat_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("phase", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chat_id"),
        sa.UniqueConstraint("team_id", "channel_id", "thread_ts", name="uq_thread_link_thread"),
    )
    with op.batch_alter_table("thread_link", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_thread_link_channel_id"), ["channel_id"], unique=False)

    op.create_table(
        "inbound_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("ts", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("coder_message_id", sa.BigInteger(), nullable=True),
        sa.Column("queued_message_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["link_id"],
            ["thread_link.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("channel_id", "ts", name="uq_inbound_message_ts"),
    )
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inbound_message_link_id"), ["link_id"], unique=False)

    op.create_table(
        "slack_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("slot", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("ts", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("digest", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["link_id"],
            ["thread_link.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("link_id", "slot", name="uq_slack_message_slot"),
    )
    with op.batch_alter_table("slack_message", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_slack_message_link_id"), ["link_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("slack_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_slack_message_link_id"))

    op.drop_table("slack_message")
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbound_message_link_id"))

    op.drop_table("inbound_message")
    with op.batch_alter_table("thread_link", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_thread_link_channel_id"))

    op.drop_table("thread_link")
    op.drop_table("stream_cursor")
    op.drop_table("seen_event")
