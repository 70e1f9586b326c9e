"""Request and response bodies of the booking API."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Literal

from boxoffice_settings import get_settings
from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from boxoffice_booking.validators import E164Phone, SeatLabel


class Customer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    phone: E164Phone | None = None
    sms_opt_out: bool = Field(
        default=False, description="No SMS for this booking; emails are always sent."
    )

    @field_validator("email")
    @classmethod
    def _deliverable(cls, email: str) -> str:
        # A non-ASCII mailbox name needs SMTPUTF8; refuse it now if our SMTP server has none.
        mailbox = email.rpartition("@")[0]
        if not mailbox.isascii() and not get_settings().smtp_smtputf8:
            raise ValueError(
                "this address has non-ASCII characters before the @, which our mail server "
                "cannot deliver; use an address with an ASCII mailbox name"
            )
        return email


class CustomerPublic(BaseModel):
    """The customer as stored: an address retention anonymised is still answered as it is."""

    email: str
    phone: str | None = None
    sms_opt_out: bool = False


class BookingCreate(BaseModel):
    """Hold seats of a showtime for a customer."""

    model_config = ConfigDict(extra="forbid")

    showtime_id: uuid.UUID
    seats: list[SeatLabel] = Field(min_length=1, max_length=100)
    customer: Customer


class BookingSeatPublic(BaseModel):
    label: str
    category: str
    price_minor: int


class BookingPublic(BaseModel):
    id: uuid.UUID
    reference: str
    status: Literal["PENDING", "CONFIRMED", "EXPIRED", "CANCELLED"]
    showtime_id: uuid.UUID
    seats: list[BookingSeatPublic]
    total_minor: int
    currency: str
    customer: CustomerPublic
    expires_at: datetime
    created_at: datetime
    confirmed_at: datetime | None
    expired_at: datetime | None
    cancelled_at: datetime | None


class PaymentCreate(BaseModel):
    """Start a payment.

    The `test` provider settles at once with `outcome` (`pending` leaves it in progress);
    `razorpay` creates an order and answers `pending` with what Checkout needs.
    """

    model_config = ConfigDict(extra="forbid")

    provider: Literal["test", "razorpay"] = "test"
    outcome: Literal["succeeded", "failed", "pending"] | None = None


PaymentStatusName = Literal["pending", "authorized", "succeeded", "failed", "refunded"]


class PaymentSummary(BaseModel):
    id: uuid.UUID
    booking_id: uuid.UUID
    provider: str
    status: PaymentStatusName
    amount_minor: int
    currency: str
    provider_reference: str | None
    refunded_minor: int
    created_at: datetime


class PaymentPublic(PaymentSummary):
    checkout: dict[str, str] = {}
    booking: BookingPublic


class BookingStatusFilter(StrEnum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"


class SeatStatePublic(BaseModel):
    label: str
    row: str
    number: int
    category: str
    status: Literal["available", "held", "sold", "blocked"]
    price_minor: int | None
    aisle_after: bool = False
    accessible: bool = False


class SeatMapHeader(BaseModel):
    showtime_id: uuid.UUID
    film_title: str
    starts_at: datetime
    currency: str


class SeatMapPublic(SeatMapHeader):
    seats: list[SeatStatePublic]


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}
