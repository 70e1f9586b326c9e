"""SQLAlchemy 2 models: PostgreSQL is the source of truth for every seat and booking."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID, ExcludeConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        uuid.UUID: UUID(as_uuid=True),
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSONB,
    }


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(primary_key=True, default=uuid.uuid4)


def _created_at() -> Mapped[datetime]:
    return mapped_column(server_default=func.now())


class BookingStatus(enum.StrEnum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"


class SeatState(enum.StrEnum):
    AVAILABLE = "available"
    HELD = "held"
    SOLD = "sold"
    BLOCKED = "blocked"


class Venue(Base):
    __tablename__ = "venues"

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    created_at: Mapped[datetime] = _created_at()

    screens: Mapped[list[Screen]] = relationship(back_populates="venue")


class Screen(Base):
    __tablename__ = "screens"
    __table_args__ = (UniqueConstraint("venue_id", "name"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    venue_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = _created_at()

    venue: Mapped[Venue] = relationship(back_populates="screens")
    seats: Mapped[list[Seat]] = relationship(
        back_populates="screen", order_by="(Seat.row_label, Seat.number)"
    )


class Seat(Base):
    """A seat of a screen's seat map."""

    __tablename__ = "seats"
    __table_args__ = (UniqueConstraint("screen_id", "label"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    screen_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("screens.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(16))
    row_label: Mapped[str] = mapped_column(String(8))
    number: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(32), default="standard")
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    # An aisle runs right after this seat (seat maps draw the gap there).
    aisle_after: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    accessible: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")

    screen: Mapped[Screen] = relationship(back_populates="seats")


class Showtime(Base):
    __tablename__ = "showtimes"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        # Two showtimes on one screen never overlap: the database refuses it (btree_gist).
        ExcludeConstraint(
            (text("screen_id"), "="),
            (text("tstzrange(starts_at, ends_at)"), "&&"),
            name="ex_showtimes_no_overlap",
            using="gist",
        ),
        Index("ix_showtimes_starts_at_id", "starts_at", "id"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    screen_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("screens.id", ondelete="RESTRICT"))
    film_title: Mapped[str] = mapped_column(String(300))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    currency: Mapped[str] = mapped_column(String(3), default="INR")
    created_at: Mapped[datetime] = _created_at()

    screen: Mapped[Screen] = relationship()
    prices: Mapped[list[ShowtimePrice]] = relationship(back_populates="showtime")


class ShowtimePrice(Base):
    __tablename__ = "showtime_prices"
    __table_args__ = (CheckConstraint("amount_minor >= 0", name="amount_not_negative"),)

    showtime_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("showtimes.id", ondelete="CASCADE"), primary_key=True
    )
    category: Mapped[str] = mapped_column(String(32), primary_key=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)

    showtime: Mapped[Showtime] = relationship(back_populates="prices")


class ShowtimeSeat(Base):
    """One row per seat of a showtime; its single `booking_id` is what forbids double booking.

    A hold is a conditional UPDATE that only succeeds on a row that is available or whose
    hold has lapsed, so two bookings can never own the same row at once.
    """

    __tablename__ = "showtime_seats"
    __table_args__ = (
        CheckConstraint(
            "(state IN ('held', 'sold')) = (booking_id IS NOT NULL)", name="owner_matches_state"
        ),
        CheckConstraint("(state = 'held') = (hold_expires_at IS NOT NULL)", name="hold_has_expiry"),
        Index("ix_showtime_seats_booking_id", "booking_id"),
    )

    showtime_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("showtimes.id", ondelete="CASCADE"), primary_key=True
    )
    label: Mapped[str] = mapped_column(String(16), primary_key=True)
    seat_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("seats.id", ondelete="RESTRICT"))
    category: Mapped[str] = mapped_column(String(32))
    state: Mapped[SeatState] = mapped_column(
        Enum(SeatState, name="seat_state", values_callable=lambda e: [m.value for m in e])
    )
    booking_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("bookings.id", ondelete="SET NULL")
    )
    hold_expires_at: Mapped[datetime | None]


class Booking(Base):
    __tablename__ = "bookings"
    __table_args__ = (
        Index(
            "ix_bookings_pending_expires_at",
            "expires_at",
            postgresql_where=text("status = 'PENDING'"),
        ),
        Index("ix_bookings_customer_email", "customer_email"),
        # Retention finds finished bookings whose personal data is still there.
        Index(
            "ix_bookings_not_anonymised",
            "status",
            postgresql_where=text("anonymised_at IS NULL AND status IN ('EXPIRED', 'CANCELLED')"),
        ),
        Index("ix_bookings_created_at_id", "created_at", "id"),
        Index(
            "ix_bookings_confirmed_showtime",
            "showtime_id",
            postgresql_where=text("status = 'CONFIRMED'"),
        ),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    showtime_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("showtimes.id", ondelete="RESTRICT"))
    status: Mapped[BookingStatus] = mapped_column(
        Enum(BookingStatus, name="booking_status", values_callable=lambda e: [m.value for m in e])
    )
    customer_email: Mapped[str] = mapped_column(String(320))
    customer_phone: Mapped[str | None] = mapped_column(String(20))
    total_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = _created_at()
    confirmed_at: Mapped[datetime | None]
    expired_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    # Set when retention replaced the customer's email and phone (see the reaper's retention).
    anonymised_at: Mapped[datetime | None]
    # The customer asked for no SMS; email is always sent (it carries the ticket).
    sms_opt_out: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))

    seats: Mapped[list[BookingSeat]] = relationship(
        back_populates="booking", order_by="BookingSeat.label"
    )
    showtime: Mapped[Showtime] = relationship()


class BookingSeat(Base):
    """The seats a booking asked for and their prices, kept after the seats are released."""

    __tablename__ = "booking_seats"

    booking_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("bookings.id", ondelete="CASCADE"), primary_key=True
    )
    label: Mapped[str] = mapped_column(String(16), primary_key=True)
    category: Mapped[str] = mapped_column(String(32))
    price_minor: Mapped[int] = mapped_column(BigInteger)

    booking: Mapped[Booking] = relationship(back_populates="seats")


class Payment(Base):
    """A payment attempt for a booking.

    `status` is a boxoffice_payments.PaymentStatus; `pending` and `authorized` are payments in
    progress, which the reaper asks the provider about (by `provider_reference`, the order id)
    before it expires their hold.
    """

    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("provider", "provider_reference", name="uq_payments_provider_reference"),
        Index(
            "ix_payments_in_progress",
            "booking_id",
            postgresql_where=text("status IN ('pending', 'authorized')"),
        ),
        Index("ix_payments_booking_id", "booking_id"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    booking_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    provider_reference: Mapped[str | None] = mapped_column(String(100))
    provider_payment_id: Mapped[str | None] = mapped_column(String(100))
    refund_reference: Mapped[str | None] = mapped_column(String(100))
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    failure_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class PaymentWebhookEvent(Base):
    """A provider callback already handled: a redelivered event id is acknowledged, not redone."""

    __tablename__ = "payment_webhook_events"

    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[datetime] = _created_at()


class IdempotencyRecord(Base):
    """The first response to a POST with an Idempotency-Key, replayed for the same key and body.

    `principal` is the hash of the API key that sent it, so keys of two clients never collide.
    A row without a `response_status` is a request still being answered.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_expires_at", "expires_at"),)

    principal: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(500))
    request_hash: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_headers: Mapped[dict[str, Any] | None]
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = _created_at()
    expires_at: Mapped[datetime]


class OutboxEvent(Base):
    """An event written in the same transaction as the state change it announces."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
        # The relay checks each aggregate's oldest unsent event to publish in order.
        Index(
            "ix_outbox_unpublished_aggregate",
            "aggregate_id",
            "id",
            postgresql_where=text("published_at IS NULL"),
        ),
        Index("ix_outbox_published_at", "published_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    aggregate_id: Mapped[uuid.UUID]
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = _created_at()
    published_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class Delivery(Base):
    """One row per (event, channel): the notifier's inbox, so a redelivery sends nothing twice.

    `status` is pending, sent, failed (permanent, e.g. SMTP 5xx) or skipped (opted out, no
    phone number, channel not configured); `attempts` counts tries, including retries.
    """

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_created_at", "created_at"),)

    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = _created_at()
    sent_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    kind: Mapped[str | None] = mapped_column(String(40))
    booking_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    provider_message_id: Mapped[str | None] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class BookingReminder(Base):
    """A booking whose showtime reminder was claimed: each booking is reminded once."""

    __tablename__ = "booking_reminders"

    booking_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("bookings.id", ondelete="CASCADE"), primary_key=True
    )
    claimed_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ApiKey(Base):
    """An API key, stored as a SHA-256 hash of the random key; the key itself is never kept."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    created_at: Mapped[datetime] = _created_at()
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class TaskStatus(enum.StrEnum):
    """The life of a background task, as Celery names its states."""

    PENDING = "PENDING"
    STARTED = "STARTED"
    RETRY = "RETRY"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    REVOKED = "REVOKED"


class TaskRecord(Base):
    """A background task's status, progress, outcome and timings, kept from Celery signals.

    `args_summary` holds ids and types only: task arguments may carry personal data.
    """

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_name_created_at", "name", "created_at"),
        Index("ix_tasks_status_created_at", "status", "created_at"),
        Index("ix_tasks_created_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    queue: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[TaskStatus] = mapped_column(
        Enum(TaskStatus, name="task_status", values_callable=lambda e: [m.value for m in e])
    )
    progress_current: Mapped[int | None] = mapped_column(Integer)
    progress_total: Mapped[int | None] = mapped_column(Integer)
    progress_message: Mapped[str | None] = mapped_column(String(500))
    args_summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = _created_at()
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    runtime_seconds: Mapped[float | None]
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class DeadLetter(Base):
    """A message a service gave up on: the original message, why, and after how many attempts.

    `service` makes it a per-service queue; replaying re-sends `message` to `task_name` on
    `queue` and stamps `replayed_at`, so the row stays as a record.
    """

    __tablename__ = "dead_letters"
    __table_args__ = (
        Index("ix_dead_letters_service_created_at", "service", "created_at"),
        # A message redelivered after it was dead-lettered (a crash before the ack) is the
        # same dead letter, not a second one.
        UniqueConstraint("service", "task_id"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    service: Mapped[str] = mapped_column(String(64))
    task_name: Mapped[str] = mapped_column(String(200))
    queue: Mapped[str] = mapped_column(String(100))
    task_id: Mapped[str | None] = mapped_column(String(64))
    event_id: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[dict[str, Any]]
    error_type: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = _created_at()
    replayed_at: Mapped[datetime | None]
    replay_task_id: Mapped[str | None] = mapped_column(String(64))
