"""A title a person gave a thread's Agent Session that Coder could not take (``chosen_title``).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24 10:00:00
File number 0009 is this revision's place in the chain; its id stays 0010 (deployed databases store it).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("thread_link", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chosen_title", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("thread_link", schema=None) as batch_op:
        batch_op.drop_column("chosen_title")
