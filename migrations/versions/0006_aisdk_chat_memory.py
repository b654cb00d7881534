"""Memory for Coder's 2025 AI-SDK chat API: chat labels and the follow-ups held while a reply streams.

Revision ID: 0006
Revises: 0007
Create Date: 2026-11-23 15:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0006"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "legacy_chat",
        sa.Column("chat_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.Column("started", sa.Boolean(), nullable=False),
        sa.Column("replying", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chat_id"),
    )
    op.create_table(
        "legacy_follow_up",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("legacy_follow_up", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_legacy_follow_up_chat_id"), ["chat_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("legacy_follow_up", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_legacy_follow_up_chat_id"))
    op.drop_table("legacy_follow_up")
    op.drop_table("legacy_chat")
