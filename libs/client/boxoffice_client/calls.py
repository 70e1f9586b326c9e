"""The API's operations as plain descriptions, shared by the sync and the async client."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter

from boxoffice_client.models import Booking, Health, Payment, SeatMap

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


def _query(**params: str | int | None) -> dict[str, str | int]:
    return {name: value for name, value in params.items() if value is not None}


HEALTH = TypeAdapter(Health)
BOOKING = TypeAdapter(Booking)
PAYMENT = TypeAdapter(Payment)
SEAT_MAP = TypeAdapter(SeatMap)


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
