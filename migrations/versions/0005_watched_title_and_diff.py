"""What the chat watch last showed in a thread: the header's title and the PR summary's source.

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-23 15:05:00
File number 0005 is this revision's place in the chain; its id stays 0007 (deployed databases store it).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("thread_link", schema=None) as batch_op:
        batch_op.add_column(sa.Column("shown_title", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("shown_diff", sa.String(length=64), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("thread_link", schema=None) as batch_op:
        batch_op.drop_column("shown_diff")
        batch_op.drop_column("shown_title")
