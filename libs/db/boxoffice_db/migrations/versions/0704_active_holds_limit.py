"""active holds limit: the function the hold asks whether a client may hold more seats

Revision ID: 0704
Revises: 0703
Create Date: 2026-12-04 17:00:00

`hold_within_limit(client, most)` is called by the hold statement (boxoffice_bookings
seat_repository.HOLD_SQL) before it locks any seat. It takes a transaction-scoped advisory
lock on the client, so one hold of a client decides at a time, and counts the client's active
holds (PENDING, not yet expired) with a snapshot taken after the lock: it sees every hold of
the client that committed before, which the statement's own snapshot (taken before it waited)
would not. A plain SQL count in the statement would let concurrent holds all see room.
`most` <= 0 is no limit: no lock, no count.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0704"
down_revision: str | None = "0703"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The advisory lock's keys: 704, this lock's namespace, and the client's hash (two clients
# whose hashes meet only wait for each other).
HOLD_WITHIN_LIMIT = """
CREATE FUNCTION hold_within_limit(client uuid, most integer) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF most <= 0 THEN
        RETURN true;
    END IF;
    PERFORM pg_advisory_xact_lock(704, hashtext(client::text));
    RETURN (
        SELECT count(*) FROM (
            SELECT 1 FROM bookings
            WHERE owner_id = client AND status = 'PENDING' AND expires_at > now()
            LIMIT most
        ) active
    ) < most;
END
$$
"""


def upgrade() -> None:
    # The count reads at most `most` entries of this index.
    op.execute(
        "CREATE INDEX ix_bookings_owner_pending_expires_at ON bookings (owner_id, expires_at)"
        " WHERE status = 'PENDING'"
    )
    op.execute(HOLD_WITHIN_LIMIT)


def downgrade() -> None:
    op.execute("DROP FUNCTION hold_within_limit(uuid, integer)")
    op.drop_index("ix_bookings_owner_pending_expires_at", table_name="bookings")
