"""Test data made through the booking service's own catalog functions."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from boxoffice_booking.catalog import create_screen, create_showtime, create_venue
from boxoffice_bookings import holds
from boxoffice_bookings.expiry import expire_batch
from boxoffice_bookings.payments import start_payment
from boxoffice_db.aio import libpq_url
from boxoffice_db.engine import session_scope
from boxoffice_db.models import Booking, BookingStatus, ShowtimeSeat
from boxoffice_settings import get_settings
from psycopg import AsyncConnection
from psycopg.rows import namedtuple_row


def make_showtime(
    rows: int = 4,
    seats_per_row: int = 10,
    blocked: tuple[str, ...] = ("A1",),
    starts_in: timedelta = timedelta(days=1),
    venue_name: str | None = None,
    film: str = "Test Film",
) -> uuid.UUID:
    """A venue, a screen of `rows` x `seats_per_row`, and a showtime (tomorrow); returns its id."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[:rows]
    with session_scope() as session:
        venue = create_venue(
            session, venue_name or f"Test Venue {uuid.uuid4().hex[:6]}", "Asia/Kolkata"
        )
        screen = create_screen(
            session, venue.id, "Screen 1", {r: seats_per_row for r in letters}, blocked=blocked
        )
        starts = datetime.now(UTC) + starts_in
        showtime = create_showtime(
            session,
            screen.id,
            film,
            starts,
            starts + timedelta(hours=2),
            {"standard": 20000},
        )
        return showtime.id


def make_booking(
    showtime_id: uuid.UUID,
    seats: list[str],
    email: str = "ada@example.com",
    phone: str | None = "+919800000001",
    *,
    confirm: bool = True,
    sms_opt_out: bool = False,
) -> uuid.UUID:
    """A booking held (and by default paid with the test provider) through the booking service."""
    booking_id = hold(showtime_id, seats, email, phone, 600, sms_opt_out=sms_opt_out).id
    if confirm:
        with session_scope() as session:
            start_payment(session, booking_id, "test", "succeeded")
    return booking_id


def hold(
    showtime_id: uuid.UUID,
    seats: list[str],
    email: str = "ada@example.com",
    phone: str | None = None,
    ttl_seconds: int = 600,
    max_seats: int = 10,
    *,
    sms_opt_out: bool = False,
) -> holds.Held:
    """Hold seats the way the API does: `holds.hold_seats` on an autocommit asyncio connection."""
    request = holds.HoldRequest.checked(
        showtime_id, seats, email, phone, ttl_seconds, max_seats, sms_opt_out
    )

    async def run() -> holds.Held:
        url = libpq_url(get_settings().database_url)
        async with await AsyncConnection.connect(url, autocommit=True) as conn:
            conn.row_factory = namedtuple_row
            return await holds.hold_seats(conn, request)

    return asyncio.run(run())


def post_showtime(
    http: httpx.Client,
    *,
    venue: str,
    screen: str,
    film: str,
    seats: int,
    price: int,
    starts_in: timedelta,
) -> tuple[str, str, str]:
    """A venue, a screen of one row of `seats`, and a showtime, made through the API; their ids."""
    venue_made = http.post("/v1/venues", json={"name": venue}).json()
    screen_made = http.post(
        f"/v1/venues/{venue_made['id']}/screens",
        json={"name": screen, "rows": [{"label": "A", "seats": seats, "category": "standard"}]},
    ).json()
    starts = datetime.now(UTC) + starts_in
    body = showtime_body(screen_made["id"], film, starts, {"standard": price})
    showtime = http.post("/v1/showtimes", json=body).json()
    return venue_made["id"], screen_made["id"], showtime["id"]


def assert_sweep_expires_lapsed_hold(
    showtime_id: uuid.UUID, label: str, *, lapsed: uuid.UUID, holder: uuid.UUID
) -> None:
    """A reaper sweep expires the `lapsed` booking and leaves seat `label` with `holder`."""
    with session_scope() as session:
        expire_batch(session, 100)
    with session_scope() as session:
        seat = session.get(ShowtimeSeat, (showtime_id, label))
        assert seat is not None
        assert seat.booking_id == holder
        old = session.get(Booking, lapsed)
        assert old is not None
        assert old.status is BookingStatus.EXPIRED


def showtime_body(
    screen_id: str,
    film: str,
    starts: datetime,
    prices: dict[str, Any],
    length: timedelta = timedelta(hours=2),
) -> dict[str, Any]:
    """The JSON of `POST /v1/showtimes`: `film` on the screen from `starts`, for `length`."""
    return {
        "screen_id": screen_id,
        "film_title": film,
        "starts_at": starts.isoformat(),
        "ends_at": (starts + length).isoformat(),
        "prices": prices,
    }
