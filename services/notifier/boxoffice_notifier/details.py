"""What a message says about a booking, read from the database (task args carry ids only)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo


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


def booking_details(row: tuple[Any, ...]) -> BookingDetails:
    """The details from the booking row `repository.lock_delivery_with_booking` read."""
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
        status=str(status),  # the enum's text, as PostgreSQL returns it
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
