"""A booking's details as the notifier reads them, without a database."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from boxoffice_notifier.details import BookingDetails

STARTS = datetime(2026, 11, 22, 14, 0, tzinfo=UTC)  # 19:30 in Asia/Kolkata


def sample_details(**changes: object) -> BookingDetails:
    details = BookingDetails(
        booking_id=uuid.UUID("8d3c4a8e-2f5b-4a1e-9f77-0c1d2e3f4a5b"),
        reference="K7M2Q9XZ",
        status="CONFIRMED",
        email="ada@example.com",
        phone="+919800000001",
        sms_opt_out=False,
        film="The Seventh Seal",
        venue="Regal Cinema",
        venue_timezone="Asia/Kolkata",
        screen="Screen 2",
        starts_at=STARTS,
        ends_at=STARTS + timedelta(hours=2),
        seats=["C3", "C4"],
        total_minor=45050,
        currency="INR",
    )
    return replace(details, **changes)  # type: ignore[arg-type]
