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


class PaymentSummary(ApiModel):
    """A payment of a booking: `status` pending, succeeded, failed or refunded."""

    id: uuid.UUID
    booking_id: uuid.UUID
    provider: str
    status: str
    amount_minor: int
    currency: str
    provider_reference: str | None
    refunded_minor: int
    created_at: datetime


class Payment(PaymentSummary):
    """A payment just started, with the booking as it is after it (and checkout details)."""

    checkout: dict[str, str] = {}
    booking: Booking


class SeatState(ApiModel):
    label: str
    row: str
    number: int
    category: str
    status: SeatStatus
    price_minor: int | None
    aisle_after: bool = False
    accessible: bool = False


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


class Venue(ApiModel):
    id: uuid.UUID
    name: str
    timezone: str
    created_at: datetime


class ScreenSeat(ApiModel):
    label: str
    number: int
    category: str
    blocked: bool
    aisle_after: bool
    accessible: bool


class ScreenRow(ApiModel):
    label: str
    seats: list[ScreenSeat]


class ScreenSummary(ApiModel):
    id: uuid.UUID
    venue_id: uuid.UUID
    name: str
    created_at: datetime


class Screen(ScreenSummary):
    """A screen with its seat map."""

    capacity: int
    categories: list[str]
    rows: list[ScreenRow]


class Price(ApiModel):
    category: str
    amount_minor: int


class Showtime(ApiModel):
    id: uuid.UUID
    screen_id: uuid.UUID
    venue_id: uuid.UUID
    film_title: str
    starts_at: datetime
    ends_at: datetime
    currency: str
    prices: list[Price]
    created_at: datetime


class Health(ApiModel):
    status: str
    checks: dict[str, str] = {}


class Page(ApiModel, Generic[T]):
    """One page of a list; pass `next_cursor` back to get the next (None: this was the last)."""

    items: list[T]
    next_cursor: str | None = None


TaskStatus = Literal["PENDING", "STARTED", "RETRY", "SUCCESS", "FAILURE", "REVOKED"]


class TaskProgress(ApiModel):
    current: int | None = None
    total: int | None = None
    message: str | None = None


class Task(ApiModel):
    """A background task's status, progress and outcome (`GET /v1/tasks/{id}`)."""

    id: str
    name: str
    queue: str | None = None
    status: TaskStatus
    progress: TaskProgress
    args_summary: dict[str, object]
    result: dict[str, object] | None = None
    error: str | None = None
    retries: int
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    runtime_seconds: float | None = None


class TaskList(ApiModel):
    items: list[Task]
    limit: int
    offset: int


class TaskRuntime(ApiModel):
    name: str
    completed: int
    avg_seconds: float
    p95_seconds: float


class QueueBacklog(ApiModel):
    waiting: dict[str, int]
    unacknowledged: int


class TaskStats(ApiModel):
    window_seconds: int
    runtime_by_name: list[TaskRuntime]
    failures_last_hour: dict[str, int]
    by_status: dict[str, int]
    backlog: QueueBacklog | None = None
