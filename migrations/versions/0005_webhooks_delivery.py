"""webhook deliveries: a lease per pending delivery, counting the requests open per endpoint

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_pending", schema=None) as batch_op:
        batch_op.add_column(sa.Column("leased_until", sa.DateTime(), nullable=True))
        batch_op.create_index(
            "ix_webhook_pending_leased", ["webhook_pk", "leased_until"], unique=False
        )
        batch_op.create_index(
            "ix_webhook_pending_endpoint_due", ["webhook_pk", "next_attempt_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_pending", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_pending_endpoint_due")
        batch_op.drop_index("ix_webhook_pending_leased")
        batch_op.drop_column("leased_until")
