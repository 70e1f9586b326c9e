"""Request and response bodies of the booking API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

SeatLabel = Annotated[
    str, StringConstraints(pattern=r"^[A-Z]{1,3}[0-9]{1,3}$", min_length=2, max_length=6)
]
E164Phone = Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$")]


class Customer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    phone: E164Phone | None = None
    sms_opt_out: bool = Field(
        default=False, description="No SMS for this booking; emails are always sent."
    )


class BookingCreate(BaseModel):
    """Hold seats of a showtime for a customer."""

    model_config = ConfigDict(extra="forbid")

    showtime_id: uuid.UUID
    seats: list[SeatLabel] = Field(min_length=1)
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
    customer: Customer
    expires_at: datetime
    created_at: datetime
    confirmed_at: datetime | None
    expired_at: datetime | None
    cancelled_at: datetime | None


class PaymentCreate(BaseModel):
    """Start a payment; the `test` provider settles at once with the outcome asked for."""

    model_config = ConfigDict(extra="forbid")

    provider: Literal["test"] = "test"
    outcome: Literal["succeeded", "failed"] = "succeeded"


class PaymentPublic(BaseModel):
    id: uuid.UUID
    booking_id: uuid.UUID
    provider: str
    status: Literal["succeeded", "failed", "refunded"]
    amount_minor: int
    currency: str
    booking: BookingPublic


class SeatStatePublic(BaseModel):
    label: str
    row: str
    number: int
    category: str
    status: Literal["available", "held", "sold", "blocked"]
    price_minor: int | None


class SeatMapPublic(BaseModel):
    showtime_id: uuid.UUID
    film_title: str
    starts_at: datetime
    currency: str
    seats: list[SeatStatePublic]


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}
