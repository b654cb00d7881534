"""Integrity tags on recorded Slack events (``seen_event.tag``), checked before a replay.

Rows recorded before this revision have no tag; the process that applies it tags the unfinished
ones (see ``bridge.relay.intake``), and any untagged row found later is refused.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 10:00:00
File number 0011 is this revision's place in the chain; its id stays 0012 (deployed databases store it).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("seen_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tag", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("seen_event", schema=None) as batch_op:
        batch_op.drop_column("tag")
