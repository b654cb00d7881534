"""Agent files: the files the agent attached to its chat, on their way into the chat's thread.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 12:31:11
File number 0013 is this revision's place in the chain; its id is 0014, one ahead like the ones before it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agent_file",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("coder_file_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("name", sa.Text(), server_default="", nullable=False),
        sa.Column("media_type", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("slack_file_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["link_id"], ["thread_link.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("link_id", "coder_file_id", name="uq_agent_file"),
    )
    with op.batch_alter_table("agent_file", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agent_file_link_id"), ["link_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_agent_file_state"), ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("agent_file", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agent_file_state"))
        batch_op.drop_index(batch_op.f("ix_agent_file_link_id"))
    op.drop_table("agent_file")
