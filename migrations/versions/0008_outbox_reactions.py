"""Durable reactions: the bridge's wished reactions on a message, kept until Slack shows them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24 10:00:00
File number 0008 is this revision's place in the chain; its id stays 0009 (deployed databases store it).
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outbox_reaction",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("ts", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("names", sa.Text(), nullable=False),
        sa.Column("among", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["link_id"], ["thread_link.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("link_id", "ts", "role", name="uq_outbox_reaction"),
    )
    with op.batch_alter_table("outbox_reaction", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_reaction_link_id"), ["link_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox_reaction", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_reaction_link_id"))
    op.drop_table("outbox_reaction")
