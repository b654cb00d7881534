"""A linked thread's Enterprise Grid org: with its team, whose installation acts in the thread once the
bridge serves several workspaces (an org-wide install, or many installs).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 15:30:00
File number 0018 is this revision's place in the chain; its id is 0019, one ahead like the ones before it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("thread_link", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("enterprise_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("thread_link", schema=None) as batch_op:
        batch_op.drop_column("enterprise_id")
