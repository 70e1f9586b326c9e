"""What a message says about a booking, read from the database (task args carry ids only)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from boxoffice_db.models import Booking, BookingSeat, Screen, Showtime, Venue
from sqlalchemy import ARRAY, String, bindparam, func, literal, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session


@dataclass(frozen=True)
class BookingDetails:
    booking_id: uuid.UUID
    reference: str
    status: str
    email: str
    phone: str | None
    sms_opt_out: bool
    film: str
    venue: str
    venue_timezone: str
    screen: str
    starts_at: datetime
    ends_at: datetime
    seats: list[str]
    total_minor: int
    currency: str

    @property
    def starts_local(self) -> str:
        """The start time as the venue's clock shows it, e.g. `Sat 22 Nov 2026, 19:30 IST`."""
        return self.starts_at.astimezone(ZoneInfo(self.venue_timezone)).strftime(
            "%a %d %b %Y, %H:%M %Z"
        )

    @property
    def starts_local_short(self) -> str:
        """The start time in few characters for an SMS, e.g. `Sat 22 Nov 19:30`."""
        return self.starts_at.astimezone(ZoneInfo(self.venue_timezone)).strftime("%a %d %b %H:%M")

    @property
    def total(self) -> str:
        return format_amount(self.total_minor, self.currency)


def format_amount(minor: int, currency: str) -> str:
    """Minor units as `INR 1,234.50` (two decimals: every currency we sell in has them)."""
    sign = "-" if minor < 0 else ""
    minor = abs(minor)
    return f"{sign}{currency} {minor // 100:,}.{minor % 100:02d}"


# One round trip, no ORM objects: the seats come as an array beside the booking's row. Built once;
# each call only binds the id.
_SEAT_LABELS = (
    select(
        func.coalesce(
            func.array_agg(aggregate_order_by(BookingSeat.label, BookingSeat.label)),
            literal([], ARRAY(String)),
        )
    )
    .where(BookingSeat.booking_id == Booking.id)
    .scalar_subquery()
)
_DETAILS = (
    select(
        Booking.id,
        Booking.reference,
        Booking.status,
        Booking.customer_email,
        Booking.customer_phone,
        Booking.sms_opt_out,
        Showtime.film_title,
        Venue.name,
        Venue.timezone,
        Screen.name,
        Showtime.starts_at,
        Showtime.ends_at,
        _SEAT_LABELS,
        Booking.total_minor,
        Booking.currency,
    )
    .join(Showtime, Showtime.id == Booking.showtime_id)
    .join(Screen, Screen.id == Showtime.screen_id)
    .join(Venue, Venue.id == Screen.venue_id)
    .where(Booking.id == bindparam("booking_id"))
)


def load_booking_details(session: Session, booking_id: uuid.UUID) -> BookingDetails | None:
    """The booking with its showtime, screen and venue, or None if there is no such booking."""
    row = session.execute(_DETAILS, {"booking_id": booking_id}).one_or_none()
    if row is None:
        return None
    (
        id_,
        reference,
        status,
        email,
        phone,
        sms_opt_out,
        film,
        venue,
        venue_timezone,
        screen,
        starts_at,
        ends_at,
        seats,
        total_minor,
        currency,
    ) = row
    return BookingDetails(
        booking_id=id_,
        reference=reference,
        status=status.value,
        email=email,
        phone=phone,
        sms_opt_out=sms_opt_out,
        film=film,
        venue=venue,
        venue_timezone=venue_timezone,
        screen=screen,
        starts_at=starts_at,
        ends_at=ends_at,
        seats=list(seats),
        total_minor=total_minor,
        currency=currency,
    )
