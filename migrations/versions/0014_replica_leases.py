"""Leases shared by replicas on one PostgreSQL database, the replica that took each event in, and
who opened the App Home tab (on any replica).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 12:30:00
File number 0014 is this revision's place in the chain; its id is 0015, one ahead like the ones before it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "lease",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("holder", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("wanted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("seen_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("replica", sa.String(length=32), nullable=True))
    op.create_table(
        "home_viewer",
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id"),
    )


def downgrade() -> None:
    op.drop_table("home_viewer")
    with op.batch_alter_table("seen_event", schema=None) as batch_op:
        batch_op.drop_column("replica")
    op.drop_table("lease")
