"""booking API: catalog flags, no overlapping showtimes, payments in progress, idempotency

Revision ID: 0301
Revises: 0601
Create Date: 2026-11-21 04:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0301"
down_revision: str | None = "0601"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "seats", sa.Column("aisle_after", sa.Boolean(), server_default="false", nullable=False)
    )
    op.add_column(
        "seats", sa.Column("accessible", sa.Boolean(), server_default="false", nullable=False)
    )

    # btree_gist lets one GiST exclusion constraint compare the uuid with `=` and the time
    # ranges with `&&`: PostgreSQL itself refuses two overlapping showtimes on a screen.
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.execute(
        "ALTER TABLE showtimes ADD CONSTRAINT ex_showtimes_no_overlap "
        "EXCLUDE USING gist (screen_id WITH =, tstzrange(starts_at, ends_at) WITH &&)"
    )
    op.create_index("ix_showtimes_starts_at_id", "showtimes", ["starts_at", "id"])
    op.create_index("ix_bookings_created_at_id", "bookings", ["created_at", "id"])

    op.add_column("payments", sa.Column("provider_payment_id", sa.String(100), nullable=True))
    op.add_column("payments", sa.Column("refund_reference", sa.String(100), nullable=True))
    op.add_column(
        "payments",
        sa.Column("refunded_minor", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.add_column("payments", sa.Column("failure_reason", sa.Text(), nullable=True))
    op.add_column(
        "payments",
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    )
    op.create_unique_constraint(
        "uq_payments_provider_reference", "payments", ["provider", "provider_reference"]
    )
    op.create_index(
        "ix_payments_in_progress",
        "payments",
        ["booking_id"],
        postgresql_where=sa.text("status IN ('pending', 'authorized')"),
    )
    op.create_index("ix_payments_booking_id", "payments", ["booking_id"])

    op.create_table(
        "payment_webhook_events",
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("provider", "event_id", name=op.f("pk_payment_webhook_events")),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("principal", sa.String(64), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_headers", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("response_body", sa.LargeBinary(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("principal", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index("ix_idempotency_keys_expires_at", "idempotency_keys", ["expires_at"])
    op.add_column("api_keys", sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("api_keys", "last_used_at")
    op.drop_index("ix_idempotency_keys_expires_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_table("payment_webhook_events")
    op.drop_index("ix_payments_booking_id", table_name="payments")
    op.drop_index("ix_payments_in_progress", table_name="payments")
    op.drop_constraint("uq_payments_provider_reference", "payments", type_="unique")
    for column in (
        "updated_at",
        "failure_reason",
        "refunded_minor",
        "refund_reference",
        "provider_payment_id",
    ):
        op.drop_column("payments", column)
    op.drop_index("ix_bookings_created_at_id", table_name="bookings")
    op.drop_index("ix_showtimes_starts_at_id", table_name="showtimes")
    op.execute("ALTER TABLE showtimes DROP CONSTRAINT ex_showtimes_no_overlap")
    op.drop_column("seats", "accessible")
    op.drop_column("seats", "aisle_after")
