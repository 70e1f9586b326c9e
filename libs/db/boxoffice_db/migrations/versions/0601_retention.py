"""retention: bookings.anonymised_at and indexes for finding old rows

Revision ID: 0601
Revises: 0501
Create Date: 2026-11-21 04:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0601"
down_revision: str | None = "0501"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("bookings", sa.Column("anonymised_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_bookings_not_anonymised",
        "bookings",
        ["status"],
        postgresql_where=sa.text("anonymised_at IS NULL AND status IN ('EXPIRED', 'CANCELLED')"),
    )
    op.create_index("ix_outbox_published_at", "outbox", ["published_at"])
    op.create_index("ix_deliveries_created_at", "deliveries", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_created_at", table_name="deliveries")
    op.drop_index("ix_outbox_published_at", table_name="outbox")
    op.drop_index("ix_bookings_not_anonymised", table_name="bookings")
    op.drop_column("bookings", "anonymised_at")
