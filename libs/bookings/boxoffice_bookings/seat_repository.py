"""Every statement that holds, sells, releases or reads seats: the contention hot path.

The rule that decides whether a seat is free is `SEAT_IS_FREE`, written once: the hold's
single statement and the sale of a booking's seats both use it. The booking's other records
(its status, payments, ledger and refunds) are in `repository`.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from boxoffice_db.aio import AsyncConn, execute
from boxoffice_db.models import (
    Booking,
    Seat,
    SeatState,
    Showtime,
    ShowtimePrice,
    ShowtimeSeat,
)
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import func

# A seat of `showtime_seats s` is free: available, or held by a hold whose expiry has passed
# (checked on read, so a lapsed hold never blocks its seats before the reaper runs).
SEAT_IS_FREE = "(s.state = 'available' OR (s.state = 'held' AND s.hold_expires_at <= now()))"


# One statement: lock the requested seats in label order (so overlapping holds never
# deadlock), judge them under the lock, and only if every one is free and priced insert the
# booking, take the seats and record their prices, so the API runs it as one autocommit round
# trip. A hold writes no event: nothing consumes one (the customer hears of the booking's
# outcome, confirmed, expired or cancelled). The seat UPDATE needs no condition of its own:
# the rows are locked and were judged free in this statement, so nobody can take them in
# between, and the verdict is read from the newest row version (FOR UPDATE re-reads a row
# another transaction changed while we waited for its lock).
# First of all, before any seat is locked (so a client's holds that wait for each other hold
# no seat another needs), `gate` asks whether the client may hold more: the database function
# hold_within_limit (migration 0704) serialises one client's holds on an advisory lock and
# counts its active holds with a snapshot newer than this statement's; it is free with no
# limit (`max_active_holds` 0).
# With `claim` (an Idempotency-Key claim: an INSERT … RETURNING that returns a row only if it
# took the key, `idempotency_repository.CLAIM_SQL`), the statement claims the request's key
# first of all and does nothing more unless it took it; every row then says whether it did
# (`claimed`), and when no requested seat exists one row with no seat says so. The claim is
# committed with the hold, or with its refusal: one round trip fewer than a claim of its own
# (issue 18). Locks are taken in one order by every hold (the key, the client's advisory lock,
# the seats in label order), so claiming first adds no deadlock.
def hold_sql(claim: str | None = None) -> str:
    """HOLD_SQL, or with `claim` the statement that claims a key and holds."""
    if claim is None:
        return _HOLD_SQL.format(claim="", gate_from="", select=_HOLD_SELECT)
    return _HOLD_SQL.format(
        claim=f"claimed AS MATERIALIZED ({claim.strip()}),\n",
        gate_from=" FROM claimed",
        select=_CLAIMING_SELECT,
    )


_HOLD_SQL = f"""
WITH {{claim}}gate AS MATERIALIZED (
    SELECT hold_within_limit(%(owner_id)s, %(max_active_holds)s) AS allowed{{gate_from}}
),
locked AS MATERIALIZED (
    SELECT s.label, s.state::text AS state, s.category, p.amount_minor,
           {SEAT_IS_FREE} AS free, g.allowed
    FROM gate g
    CROSS JOIN showtime_seats s
    LEFT JOIN showtime_prices p ON p.showtime_id = s.showtime_id AND p.category = s.category
    WHERE s.showtime_id = %(showtime_id)s AND s.label = ANY(%(labels)s)
    ORDER BY s.label
    FOR UPDATE OF s
),
verdict AS (
    SELECT count(*) = %(n)s AND bool_and(free) AND bool_and(amount_minor IS NOT NULL)
               AND bool_and(allowed) AS ok,
           sum(amount_minor) AS total
    FROM locked
),
new_booking AS (
    INSERT INTO bookings (id, reference, showtime_id, status, customer_email, customer_phone,
                          sms_opt_out, owner_id, total_minor, currency, expires_at)
    SELECT %(booking_id)s, %(reference)s, st.id, 'PENDING', %(email)s, %(phone)s,
           %(sms_opt_out)s, %(owner_id)s, v.total, st.currency,
           now() + %(ttl)s::int * interval '1 second'
    FROM verdict v JOIN showtimes st ON st.id = %(showtime_id)s
    WHERE v.ok
    RETURNING expires_at, created_at, currency, total_minor
),
held AS (
    UPDATE showtime_seats s
    SET state = 'held', booking_id = %(booking_id)s, hold_expires_at = b.expires_at
    FROM new_booking b
    WHERE s.showtime_id = %(showtime_id)s AND s.label = ANY(%(labels)s)
    RETURNING s.label
),
priced AS (
    INSERT INTO booking_seats (booking_id, label, category, price_minor)
    SELECT %(booking_id)s, l.label, l.category, l.amount_minor FROM locked l, new_booking
    RETURNING label
)
{{select}}
"""  # noqa: S608 (only the constant SEAT_IS_FREE is interpolated)
_HOLD_COLUMNS = """l.label, l.state, l.category, l.amount_minor, l.free, l.allowed,
       b.expires_at, b.created_at, b.currency, b.total_minor,
       (SELECT count(*) FROM held) AS held, (SELECT count(*) FROM priced) AS priced"""
_HOLD_SELECT = f"""SELECT {_HOLD_COLUMNS}
FROM locked l LEFT JOIN new_booking b ON true
ORDER BY l.label"""  # noqa: S608 (constants only)
_CLAIMING_SELECT = f"""SELECT c.claimed, {_HOLD_COLUMNS}
FROM (SELECT count(*) > 0 AS claimed FROM claimed) c
LEFT JOIN (locked l LEFT JOIN new_booking b ON true) ON true
ORDER BY l.label"""  # noqa: S608 (constants only)
HOLD_SQL = hold_sql()

# The booking's seats, locked in label order, each judged sellable to it: still its own, or
# free again (a lapsed hold whose seats nobody took).
SELLABLE_SQL = f"""
SELECT s.label, (s.booking_id IS NOT DISTINCT FROM %(booking_id)s OR {SEAT_IS_FREE}) AS sellable
FROM showtime_seats s
WHERE s.showtime_id = %(showtime_id)s AND s.label = ANY(%(labels)s)
ORDER BY s.label
FOR UPDATE OF s
"""  # noqa: S608 (only the constant SEAT_IS_FREE is interpolated)

SELL_SQL = """
UPDATE showtime_seats
SET state = 'sold', booking_id = %(booking_id)s, hold_expires_at = NULL
WHERE showtime_id = %(showtime_id)s AND label = ANY(%(labels)s)
"""

SEAT_STATES_SQL = (
    "SELECT label, state::text AS state, hold_expires_at FROM showtime_seats"
    " WHERE showtime_id = %(showtime_id)s"
)


# --- holds (the API's asyncio path: autocommit, one statement is the transaction) ----------


async def run_hold(conn: AsyncConn, params: dict[str, Any], claim: str | None = None) -> list[Any]:
    """HOLD_SQL's rows: one per requested seat that exists, with the new booking if made.

    With `claim`, `hold_sql(claim)`'s rows (`params` then has the claim's too).
    """
    cursor = await execute(conn, HOLD_SQL if claim is None else _claiming_sql(claim), params)
    return await cursor.fetchall()


@functools.lru_cache(maxsize=4)
def _claiming_sql(claim: str) -> str:
    return hold_sql(claim)


async def showtime_exists(conn: AsyncConn, showtime_id: uuid.UUID) -> bool:
    found = await conn.execute("SELECT 1 FROM showtimes WHERE id = %s", (showtime_id,))
    return await found.fetchone() is not None


# --- seats ---------------------------------------------------------------------------------


def sell_seats(session: Session, booking: Booking) -> bool:
    """Mark all the booking's seats sold, re-acquiring lapsed ones if still free; or none.

    The seat rows are locked in label order (after the booking, as expiry does), judged
    under the lock, and updated only if every one is still this booking's or free again:
    all or nothing without a savepoint.
    """
    labels = sorted(seat.label for seat in booking.seats)
    params = {"booking_id": booking.id, "showtime_id": booking.showtime_id, "labels": labels}
    connection = session.connection()
    sellable = connection.exec_driver_sql(SELLABLE_SQL, params).all()
    if len(sellable) != len(labels) or not all(row.sellable for row in sellable):
        return False
    connection.exec_driver_sql(SELL_SQL, params)
    return True


def release_seats(session: Session, booking_ids: Sequence[uuid.UUID]) -> list[str]:
    """Return the seats still owned by these bookings to sale; seats re-sold since stay put."""
    if not booking_ids:
        return []
    result = session.execute(
        update(ShowtimeSeat)
        .where(ShowtimeSeat.booking_id.in_(booking_ids))
        .values(state=SeatState.AVAILABLE, booking_id=None, hold_expires_at=None)
        .returning(ShowtimeSeat.label)
    )
    return list(result.scalars())


@dataclass(frozen=True)
class SeatStateRow:
    label: str
    state: SeatState
    hold_expires_at: datetime | None


def seat_states(session: Session, showtime_id: uuid.UUID) -> list[SeatStateRow]:
    """Every seat's state of a showtime (the seat cache's rebuild)."""
    rows = session.connection().exec_driver_sql(SEAT_STATES_SQL, {"showtime_id": showtime_id})
    return [SeatStateRow(r.label, SeatState(r.state), r.hold_expires_at) for r in rows]


async def seat_states_async(conn: AsyncConn, showtime_id: uuid.UUID) -> list[SeatStateRow]:
    """`seat_states` on the API's asyncio connection."""
    cursor = await execute(conn, SEAT_STATES_SQL, {"showtime_id": showtime_id})
    return [
        SeatStateRow(r.label, SeatState(r.state), r.hold_expires_at)
        for r in await cursor.fetchall()
    ]


def find_showtime(session: Session, showtime_id: uuid.UUID) -> Showtime | None:
    return session.get(Showtime, showtime_id)


def seat_layout(session: Session, showtime_id: uuid.UUID) -> Sequence[Any]:
    """The showtime's seats with row, number, category, price and flags, in seat-map order."""
    return session.execute(
        select(
            ShowtimeSeat.label,
            Seat.row_label,
            Seat.number,
            ShowtimeSeat.category,
            ShowtimePrice.amount_minor,
            Seat.aisle_after,
            Seat.accessible,
        )
        .join(Seat, Seat.id == ShowtimeSeat.seat_id)
        .outerjoin(
            ShowtimePrice,
            (ShowtimePrice.showtime_id == ShowtimeSeat.showtime_id)
            & (ShowtimePrice.category == ShowtimeSeat.category),
        )
        .where(ShowtimeSeat.showtime_id == showtime_id)
        .order_by(func.length(Seat.row_label), Seat.row_label, Seat.number)
    ).all()
