"""Link attempts: the tokens each person submitted to `/coder link` lately, for the throttle.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 09:00:00
File number 0012 is this revision's place in the chain; its id stays 0013 (deployed databases store it).
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "link_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("slack_user_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("link_attempt", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_link_attempt_slack_user_id"), ["slack_user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("link_attempt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_link_attempt_slack_user_id"))
    op.drop_table("link_attempt")
