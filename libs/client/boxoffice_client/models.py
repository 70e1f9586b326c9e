"""Typed models of the API's responses (docs/openapi.json; a contract test keeps them in step).

Unknown fields are ignored, so a newer API that adds fields does not break an older client.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")

BookingStatus = Literal["PENDING", "CONFIRMED", "EXPIRED", "CANCELLED"]
SeatStatus = Literal["available", "held", "sold", "blocked"]


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Customer(ApiModel):
    email: str
    phone: str | None = None
    sms_opt_out: bool = False


class BookingSeat(ApiModel):
    label: str
    category: str
    price_minor: int


class Booking(ApiModel):
    """A hold (PENDING until `expires_at`) and what became of it."""

    id: uuid.UUID
    reference: str
    status: BookingStatus
    showtime_id: uuid.UUID
    seats: list[BookingSeat]
    total_minor: int
    currency: str
    customer: Customer
    expires_at: datetime
    created_at: datetime
    confirmed_at: datetime | None = None
    expired_at: datetime | None = None
    cancelled_at: datetime | None = None


class Payment(ApiModel):
    """A payment of a booking, with the booking as it is after the payment."""

    id: uuid.UUID
    booking_id: uuid.UUID
    provider: str
    status: str
    amount_minor: int
    currency: str
    booking: Booking


class SeatState(ApiModel):
    label: str
    row: str
    number: int
    category: str
    status: SeatStatus
    price_minor: int | None


class SeatMap(ApiModel):
    """Every seat of a showtime with its state right now."""

    showtime_id: uuid.UUID
    film_title: str
    starts_at: datetime
    currency: str
    seats: list[SeatState]

    def available(self) -> list[str]:
        """Labels of the seats that can be held now."""
        return [seat.label for seat in self.seats if seat.status == "available"]


class Health(ApiModel):
    status: str
    checks: dict[str, str] = {}


class Page(ApiModel, Generic[T]):
    """One page of a list; pass `next_cursor` back to get the next (None: this was the last)."""

    items: list[T]
    next_cursor: str | None = None
