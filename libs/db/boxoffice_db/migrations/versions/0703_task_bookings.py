"""task bookings: the booking a task is about, so its status is shown to that booking's client

Revision ID: 0703
Revises: 0701
Create Date: 2026-12-04 16:45:00

The relay writes the column from the outbox event's aggregate (every event is a booking's).
Existing rows get it from the same id in their `args_summary`, where it names a booking.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0703"
down_revision: str | None = "0701"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("booking_id", sa.UUID(), nullable=True))
    # Compared as text: an aggregate id that is not a booking's (or not a uuid) links nothing.
    op.execute(
        "UPDATE tasks t SET booking_id = b.id FROM bookings b"
        " WHERE b.id::text = t.args_summary #>> '{args,0,aggregate_id}'"
    )


def downgrade() -> None:
    op.drop_column("tasks", "booking_id")
