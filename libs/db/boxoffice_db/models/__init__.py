"""SQLAlchemy 2 models: PostgreSQL is the source of truth for every seat and booking.

One module per part of the schema: `catalog` (venues to each showtime's seats), `bookings`
(bookings and their money), `clients` (API clients, keys, idempotency records) and
`messaging` (outbox, deliveries, task status, dead letters), on the `base` they share.
Import models from here: importing the package maps every table, so the relationships and
foreign keys between the modules resolve, and Alembic sees the whole schema.
"""

from __future__ import annotations

from boxoffice_db.models.base import (
    NAMING_CONVENTION,
    Base,
)
from boxoffice_db.models.bookings import (
    Booking,
    BookingSeat,
    BookingStatus,
    LedgerEntry,
    LedgerKind,
    Payment,
    PaymentWebhookEvent,
    Refund,
    RefundState,
)
from boxoffice_db.models.catalog import (
    Screen,
    Seat,
    SeatState,
    Showtime,
    ShowtimePrice,
    ShowtimeSeat,
    Venue,
)
from boxoffice_db.models.clients import (
    BOOTSTRAP_KEY_NAME,
    BOOTSTRAP_OWNER_ID,
    ApiKey,
    Client,
    IdempotencyRecord,
)
from boxoffice_db.models.messaging import (
    BookingReminder,
    DeadLetter,
    Delivery,
    OutboxEvent,
    TaskRecord,
    TaskStatus,
)

__all__ = [
    "BOOTSTRAP_KEY_NAME",
    "BOOTSTRAP_OWNER_ID",
    "NAMING_CONVENTION",
    "ApiKey",
    "Base",
    "Booking",
    "BookingReminder",
    "BookingSeat",
    "BookingStatus",
    "Client",
    "DeadLetter",
    "Delivery",
    "IdempotencyRecord",
    "LedgerEntry",
    "LedgerKind",
    "OutboxEvent",
    "Payment",
    "PaymentWebhookEvent",
    "Refund",
    "RefundState",
    "Screen",
    "Seat",
    "SeatState",
    "Showtime",
    "ShowtimePrice",
    "ShowtimeSeat",
    "TaskRecord",
    "TaskStatus",
    "Venue",
]
