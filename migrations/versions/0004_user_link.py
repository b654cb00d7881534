"""User links: a Slack user's own Coder account and encrypted token (linked identity mode).

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-23 15:10:00
File number 0004 is this revision's place in the chain; its id stays 0005 (deployed databases store it).
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "user_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("slack_user_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("coder_user_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("coder_username", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("token_ciphertext", sa.Text(), nullable=False),
        sa.Column("broken", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("team_id", "slack_user_id", name="uq_user_link_user"),
    )


def downgrade() -> None:
    op.drop_table("user_link")
