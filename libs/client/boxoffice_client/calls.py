"""The API's operations as plain descriptions, shared by the sync and the async client."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Generic, NotRequired, TypedDict, TypeVar

from pydantic import TypeAdapter

from boxoffice_client.models import (
    Booking,
    Health,
    Page,
    Payment,
    PaymentSummary,
    Screen,
    ScreenSummary,
    SeatMap,
    Showtime,
    Venue,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API operation: what to send and how to read the answer."""

    method: str
    path: str
    result: TypeAdapter[T]
    json: Any = None
    params: dict[str, str | int] = field(default_factory=dict)
    # A POST gets a key: the caller's, or a fresh one, the same on every attempt of this call.
    idempotency_key: str | None = None

    def __post_init__(self) -> None:
        if self.method == "POST" and self.idempotency_key is None:
            object.__setattr__(self, "idempotency_key", str(uuid.uuid4()))

    def headers(self) -> dict[str, str]:
        return {"Idempotency-Key": self.idempotency_key} if self.idempotency_key else {}


def _id(value: uuid.UUID | str) -> str:
    return str(uuid.UUID(str(value)))


def _query(**params: object) -> dict[str, str | int]:
    """Query parameters without the unset ones; ids, dates and times as the API writes them."""
    query: dict[str, str | int] = {}
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, datetime | date):
            query[name] = value.isoformat()
        elif isinstance(value, int):
            query[name] = value
        else:
            query[name] = str(value)
    return query


class RowSpec(TypedDict):
    """One row of a new screen: `seats` numbered 1..n, with optional per-seat flags."""

    label: str
    seats: int
    category: NotRequired[str]
    blocked: NotRequired[list[int]]
    aisle_after: NotRequired[list[int]]
    accessible: NotRequired[list[int]]


HEALTH = TypeAdapter(Health)
BOOKING = TypeAdapter(Booking)
PAYMENT = TypeAdapter(Payment)
PAYMENTS = TypeAdapter(list[PaymentSummary])
SEAT_MAP = TypeAdapter(SeatMap)
VENUE = TypeAdapter(Venue)
SCREEN = TypeAdapter(Screen)
SHOWTIME = TypeAdapter(Showtime)
BOOKING_PAGE = TypeAdapter(Page[Booking])
VENUE_PAGE = TypeAdapter(Page[Venue])
SCREEN_PAGE = TypeAdapter(Page[ScreenSummary])
SHOWTIME_PAGE = TypeAdapter(Page[Showtime])


def read_health() -> Call[Health]:
    return Call("GET", "/healthz", HEALTH)


def read_seat_map(showtime_id: uuid.UUID | str) -> Call[SeatMap]:
    return Call("GET", f"/v1/showtimes/{_id(showtime_id)}/seats", SEAT_MAP)


def create_booking(
    showtime_id: uuid.UUID | str,
    seats: Sequence[str],
    email: str,
    phone: str | None,
    idempotency_key: str | None,
    sms_opt_out: bool = False,
) -> Call[Booking]:
    customer: dict[str, str | bool] = {"email": email}
    if phone is not None:
        customer["phone"] = phone
    if sms_opt_out:
        customer["sms_opt_out"] = True
    body = {"showtime_id": _id(showtime_id), "seats": list(seats), "customer": customer}
    return Call("POST", "/v1/bookings", BOOKING, json=body, idempotency_key=idempotency_key)


def read_booking(booking_id: uuid.UUID | str) -> Call[Booking]:
    return Call("GET", f"/v1/bookings/{_id(booking_id)}", BOOKING)


def create_payment(
    booking_id: uuid.UUID | str, provider: str, outcome: str | None, idempotency_key: str | None
) -> Call[Payment]:
    body: dict[str, str] = {"provider": provider}
    if outcome is not None:
        body["outcome"] = outcome
    path = f"/v1/bookings/{_id(booking_id)}/payments"
    return Call("POST", path, PAYMENT, json=body, idempotency_key=idempotency_key)


def cancel_booking(booking_id: uuid.UUID | str, idempotency_key: str | None) -> Call[Booking]:
    path = f"/v1/bookings/{_id(booking_id)}/cancel"
    return Call("POST", path, BOOKING, idempotency_key=idempotency_key)


def list_bookings(
    customer_email: str | None,
    status: str | None,
    showtime_id: uuid.UUID | str | None,
    limit: int | None,
    cursor: str | None,
) -> Call[Page[Booking]]:
    params = _query(
        customer_email=customer_email,
        status=status,
        showtime_id=showtime_id,
        limit=limit,
        cursor=cursor,
    )
    return Call("GET", "/v1/bookings", BOOKING_PAGE, params=params)


def list_payments(booking_id: uuid.UUID | str) -> Call[list[PaymentSummary]]:
    return Call("GET", f"/v1/bookings/{_id(booking_id)}/payments", PAYMENTS)


def create_venue(name: str, timezone: str, idempotency_key: str | None) -> Call[Venue]:
    body = {"name": name, "timezone": timezone}
    return Call("POST", "/v1/venues", VENUE, json=body, idempotency_key=idempotency_key)


def read_venue(venue_id: uuid.UUID | str) -> Call[Venue]:
    return Call("GET", f"/v1/venues/{_id(venue_id)}", VENUE)


def list_venues(limit: int | None, cursor: str | None) -> Call[Page[Venue]]:
    return Call("GET", "/v1/venues", VENUE_PAGE, params=_query(limit=limit, cursor=cursor))


def create_screen(
    venue_id: uuid.UUID | str, name: str, rows: Sequence[RowSpec], idempotency_key: str | None
) -> Call[Screen]:
    body = {"name": name, "rows": [dict(row) for row in rows]}
    path = f"/v1/venues/{_id(venue_id)}/screens"
    return Call("POST", path, SCREEN, json=body, idempotency_key=idempotency_key)


def read_screen(screen_id: uuid.UUID | str) -> Call[Screen]:
    return Call("GET", f"/v1/screens/{_id(screen_id)}", SCREEN)


def list_screens(
    venue_id: uuid.UUID | str, limit: int | None, cursor: str | None
) -> Call[Page[ScreenSummary]]:
    path = f"/v1/venues/{_id(venue_id)}/screens"
    return Call("GET", path, SCREEN_PAGE, params=_query(limit=limit, cursor=cursor))


def create_showtime(
    screen_id: uuid.UUID | str,
    film_title: str,
    starts_at: datetime,
    ends_at: datetime,
    prices: Mapping[str, int],
    currency: str,
    idempotency_key: str | None,
) -> Call[Showtime]:
    body = {
        "screen_id": _id(screen_id),
        "film_title": film_title,
        "starts_at": starts_at.isoformat(),
        "ends_at": ends_at.isoformat(),
        "prices": dict(prices),
        "currency": currency,
    }
    return Call("POST", "/v1/showtimes", SHOWTIME, json=body, idempotency_key=idempotency_key)


def read_showtime(showtime_id: uuid.UUID | str) -> Call[Showtime]:
    return Call("GET", f"/v1/showtimes/{_id(showtime_id)}", SHOWTIME)


def list_showtimes(
    venue_id: uuid.UUID | str | None,
    screen_id: uuid.UUID | str | None,
    on: date | None,
    starts_after: datetime | None,
    limit: int | None,
    cursor: str | None,
) -> Call[Page[Showtime]]:
    params = _query(
        venue_id=venue_id,
        screen_id=screen_id,
        date=on,
        starts_after=starts_after,
        limit=limit,
        cursor=cursor,
    )
    return Call("GET", "/v1/showtimes", SHOWTIME_PAGE, params=params)
