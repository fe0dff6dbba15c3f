"""events: an index on created_at for the retention purge

Revision ID: 0004_events
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004_events"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The purge looks across tenants; ix_events_tenant_created leads with the tenant.
    op.create_index("ix_events_created", "events", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_events_created", table_name="events")
