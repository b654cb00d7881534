"""Buttons under an outbox text, stored with it (the slot's digest covers text and buttons).

Revision ID: 0008
Revises: 0006
Create Date: 2026-11-23 18:30:00
File number 0007 is this revision's place in the chain; its id stays 0008 (deployed databases store it).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("buttons", sa.Text(), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("buttons")
