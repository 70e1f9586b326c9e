"""Bookings and their money: the booking and its seats, payments, the payment ledger, refunds."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from boxoffice_db.models.base import Base, created_at_now, uuid_pk
from boxoffice_db.models.catalog import Showtime
from boxoffice_db.models.clients import owner_column


class BookingStatus(enum.StrEnum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"


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
        Index("ix_bookings_owner_created_at", "owner_id", "created_at", "id"),
        # A client's active holds, counted by the hold (function hold_within_limit, 0704).
        Index(
            "ix_bookings_owner_pending_expires_at",
            "owner_id",
            "expires_at",
            postgresql_where=text("status = 'PENDING'"),
        ),
        Index(
            "ix_bookings_confirmed_showtime",
            "showtime_id",
            postgresql_where=text("status = 'CONFIRMED'"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
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
    created_at: Mapped[datetime] = created_at_now()
    confirmed_at: Mapped[datetime | None]
    expired_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    # Set when retention replaced the customer's email and phone (see the reaper's retention).
    anonymised_at: Mapped[datetime | None]
    # The customer asked for no SMS; email is always sent (it carries the ticket).
    sms_opt_out: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # The client whose key created it: only that client's keys see it (or operators' scopes).
    owner_id: Mapped[uuid.UUID] = owner_column()

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

    id: Mapped[uuid.UUID] = uuid_pk()
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
    created_at: Mapped[datetime] = created_at_now()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class PaymentWebhookEvent(Base):
    """A provider callback already handled: a redelivered event id is acknowledged, not redone."""

    __tablename__ = "payment_webhook_events"

    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[datetime] = created_at_now()


class LedgerKind(enum.StrEnum):
    """A money movement: what the provider did (or was asked to do) with a payment."""

    AUTHORISED = "authorised"
    CAPTURED = "captured"
    REFUND_REQUESTED = "refund_requested"
    REFUNDED = "refunded"
    FAILED = "failed"


class LedgerEntry(Base):
    """One money movement, keyed by the provider's id for it: a booking's money is their sum.

    `provider_ref` is the provider's payment id for `authorised`, `captured` and `failed`
    (the order id when a failure names no payment), our refund id (the idempotency key) for
    `refund_requested`, and the provider's refund id for `refunded`; each is recorded once.
    """

    __tablename__ = "payment_ledger"
    __table_args__ = (
        UniqueConstraint("provider", "kind", "provider_ref", name="uq_payment_ledger_movement"),
        CheckConstraint("amount_minor >= 0", name="amount_not_negative"),
        CheckConstraint(
            "kind IN ('authorised', 'captured', 'refund_requested', 'refunded', 'failed')",
            name="known_kind",
        ),
        Index("ix_payment_ledger_booking_id", "booking_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    booking_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"))
    payment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(20))
    provider_ref: Mapped[str] = mapped_column(String(200))
    provider_payment_id: Mapped[str | None] = mapped_column(String(100))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = created_at_now()


class RefundState(enum.StrEnum):
    PENDING = "pending"
    REFUNDED = "refunded"


class Refund(Base):
    """A refund owed for one captured provider payment: written `pending` in the transaction
    that decides it, asked of the provider after the commit with `id` as the idempotency key,
    and reconciled until `refunded`. One per provider payment, so money goes back once.
    """

    __tablename__ = "refunds"
    __table_args__ = (
        UniqueConstraint("provider", "provider_payment_id", name="uq_refunds_provider_payment"),
        Index("ix_refunds_pending", "created_at", postgresql_where=text("status = 'pending'")),
        Index("ix_refunds_booking_id", "booking_id"),
        CheckConstraint("status IN ('pending', 'refunded')", name="known_status"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    booking_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"))
    payment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(32))
    provider_payment_id: Mapped[str] = mapped_column(String(100))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=RefundState.PENDING.value)
    provider_refund_id: Mapped[str | None] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_now()
    settled_at: Mapped[datetime | None]
