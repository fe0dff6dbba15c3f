"""relays' shared state for the embedded mode: pauses, down marks, rates, sessions

Revision ID: 0004_relays
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_relays"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "relay_states",
        sa.Column("relay", sa.String(length=64), nullable=False),
        sa.Column("base_rate", sa.Float(), nullable=True),
        sa.Column("limited_at", sa.DateTime(), nullable=True),
        sa.Column("paused_until", sa.DateTime(), nullable=True),
        sa.Column("down_until", sa.DateTime(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("next_slot", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("relay", name=op.f("pk_relay_states")),
    )
    op.create_table(
        "relay_sessions",
        sa.Column("token", sa.String(length=40), nullable=False),
        sa.Column("relay", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_relay_sessions")),
    )
    with op.batch_alter_table("relay_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_relay_sessions_relay", ["relay", "expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("relay_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_relay_sessions_relay")
    op.drop_table("relay_sessions")
    op.drop_table("relay_states")
