"""booking owners: clients, the client of each API key, and the owner of each booking

Revision ID: 0701
Revises: 0702
Create Date: 2026-12-04 08:50:00

A client (a tenant) holds any number of API keys, which share its bookings. Existing keys and
bookings all belonged to one operator: they are given to the bootstrap client.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0701"
down_revision: str | None = "0702"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BOOTSTRAP = "00000000-0000-0000-0000-000000000001"


def upgrade() -> None:
    op.create_table(
        "clients",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_clients"),
        sa.UniqueConstraint("name", name="uq_clients_name"),
    )
    clients = sa.table("clients", sa.column("id", sa.UUID()), sa.column("name", sa.String()))
    op.execute(clients.insert().values(id=BOOTSTRAP, name="bootstrap"))
    default = sa.text(f"'{BOOTSTRAP}'::uuid")
    for table in ("api_keys", "bookings"):
        # The default fills existing rows (and rows written by operator tools without one).
        op.add_column(
            table, sa.Column("owner_id", sa.UUID(), nullable=False, server_default=default)
        )
        op.create_foreign_key(
            f"fk_{table}_owner_id_clients", table, "clients", ["owner_id"], ["id"]
        )
    op.create_index("ix_bookings_owner_created_at", "bookings", ["owner_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_bookings_owner_created_at", table_name="bookings")
    for table in ("bookings", "api_keys"):
        op.drop_constraint(f"fk_{table}_owner_id_clients", table, type_="foreignkey")
        op.drop_column(table, "owner_id")
    op.drop_table("clients")
