"""events to fan out: a narrow list of its own instead of events.fanned_out_at

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events_to_fan_out",
        sa.Column("event_pk", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["event_pk"], ["events.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("event_pk"),
    )
    op.execute(
        "INSERT INTO events_to_fan_out (event_pk) SELECT id FROM events WHERE fanned_out_at IS NULL"
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_fan_out")
        batch_op.drop_column("fanned_out_at")


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fanned_out_at", sa.DateTime(), nullable=True))
        batch_op.create_index("ix_events_fan_out", ["fanned_out_at", "created_at"], unique=False)
    # Every event not on the list was fanned out; when is not known, so: now.
    op.execute(
        "UPDATE events SET fanned_out_at = CURRENT_TIMESTAMP"
        " WHERE id NOT IN (SELECT event_pk FROM events_to_fan_out)"
    )
    op.drop_table("events_to_fan_out")
