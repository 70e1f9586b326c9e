"""What a message says about a booking, read from the database (task args carry ids only)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from boxoffice_db.models import Booking, Screen, Showtime
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, selectinload


@dataclass(frozen=True)
class BookingDetails:
    booking_id: uuid.UUID
    reference: str
    status: str
    email: str
    phone: str | None
    film: str
    venue: str
    screen: str
    starts_local: str
    seats: list[str]
    total: str


def format_amount(minor: int, currency: str) -> str:
    return f"{currency} {minor // 100:,}.{minor % 100:02d}"


def load_booking_details(session: Session, booking_id: uuid.UUID) -> BookingDetails | None:
    booking = session.scalars(
        select(Booking)
        .where(Booking.id == booking_id)
        .options(
            selectinload(Booking.seats),
            joinedload(Booking.showtime).joinedload(Showtime.screen).joinedload(Screen.venue),
        )
    ).one_or_none()
    if booking is None:
        return None
    showtime = booking.showtime
    venue = showtime.screen.venue
    starts = showtime.starts_at.astimezone(ZoneInfo(venue.timezone))
    return BookingDetails(
        booking_id=booking.id,
        reference=booking.reference,
        status=booking.status.value,
        email=booking.customer_email,
        phone=booking.customer_phone,
        film=showtime.film_title,
        venue=venue.name,
        screen=showtime.screen.name,
        starts_local=starts.strftime("%a %d %b %Y, %H:%M %Z"),
        seats=[s.label for s in booking.seats],
        total=format_amount(booking.total_minor, booking.currency),
    )
