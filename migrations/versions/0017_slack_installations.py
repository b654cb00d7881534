"""Slack installations (OAuth distribution into many workspaces) and the OAuth states in flight.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 15:30:00
File number 0017 is this revision's place in the chain; its id is 0018, one ahead like the ones before it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _text(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.Text(), server_default="", nullable=False)


def _string(name: str, length: int) -> sa.Column[str]:
    return sa.Column(name, sqlmodel.sql.sqltypes.AutoString(length=length), nullable=False)


def upgrade() -> None:
    op.create_table(
        "slack_installation",
        sa.Column("id", sa.Integer(), nullable=False),
        _string("enterprise_id", 32),
        _string("team_id", 32),
        _string("user_id", 32),
        sa.Column("is_enterprise_install", sa.Boolean(), nullable=False),
        _string("app_id", 32),
        _string("enterprise_name", 256),
        _string("enterprise_url", 256),
        _string("team_name", 256),
        _string("token_type", 16),
        _string("bot_id", 32),
        _string("bot_user_id", 32),
        _text("bot_scopes"),
        _text("bot_token_ciphertext"),
        _text("bot_refresh_ciphertext"),
        sa.Column("bot_token_expires_at", sa.BigInteger(), nullable=True),
        _text("user_scopes"),
        _text("user_token_ciphertext"),
        _text("user_refresh_ciphertext"),
        sa.Column("user_token_expires_at", sa.BigInteger(), nullable=True),
        sa.Column("installed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("enterprise_id", "team_id", "user_id", name="uq_slack_installation_installer"),
    )
    op.create_table(
        "slack_oauth_state",
        _string("state", 64),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("state"),
    )


def downgrade() -> None:
    op.drop_table("slack_oauth_state")
    op.drop_table("slack_installation")
