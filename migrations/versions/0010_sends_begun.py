"""How many sends to a thread's chat the bridge began (``sends_begun``), so a turn's stored ending
never marks idle a chat that a send begun meanwhile will make busy.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24 07:00:00
File number 0010 is this revision's place in the chain; its id stays 0011 (deployed databases store it).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("thread_link", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sends_begun", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("thread_link", schema=None) as batch_op:
        batch_op.drop_column("sends_begun")
