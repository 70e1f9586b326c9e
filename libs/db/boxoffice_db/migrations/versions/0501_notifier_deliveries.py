"""notifier: SMS opt-out, delivery attempts and outcome, reminders claimed once per booking

Revision ID: 0501
Revises: 0001
Create Date: 2026-11-21 04:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0501"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "bookings",
        sa.Column("sms_opt_out", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column(
        "deliveries",
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column("deliveries", sa.Column("kind", sa.String(length=40), nullable=True))
    op.add_column("deliveries", sa.Column("booking_id", sa.UUID(), nullable=True))
    op.add_column(
        "deliveries", sa.Column("provider_message_id", sa.String(length=100), nullable=True)
    )
    op.add_column(
        "deliveries",
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    )
    op.create_index(op.f("ix_deliveries_booking_id"), "deliveries", ["booking_id"])
    op.create_table(
        "booking_reminders",
        sa.Column("booking_id", sa.UUID(), nullable=False),
        sa.Column(
            "claimed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
            name=op.f("fk_booking_reminders_booking_id_bookings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("booking_id", name=op.f("pk_booking_reminders")),
    )
    op.create_index(
        "ix_bookings_confirmed_showtime",
        "bookings",
        ["showtime_id"],
        postgresql_where=sa.text("status = 'CONFIRMED'"),
    )


def downgrade() -> None:
    op.drop_index("ix_bookings_confirmed_showtime", table_name="bookings")
    op.drop_table("booking_reminders")
    op.drop_index(op.f("ix_deliveries_booking_id"), table_name="deliveries")
    for column in ("updated_at", "provider_message_id", "booking_id", "kind", "attempts"):
        op.drop_column("deliveries", column)
    op.drop_column("bookings", "sms_opt_out")
