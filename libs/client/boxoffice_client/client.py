"""The synchronous client."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date, datetime
from types import TracebackType
from typing import TypeVar

import httpx

from boxoffice_client import calls
from boxoffice_client.calls import Call, RowSpec
from boxoffice_client.errors import TransportError, error_for
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
from boxoffice_client.pagination import iterate
from boxoffice_client.retry import RetryPolicy

T = TypeVar("T")

USER_AGENT = "boxoffice-client/0.1"


def auth_headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT}


class BoxofficeClient:
    """Calls the booking API with an API key, retrying safely (see `boxoffice_client.retry`).

    Use it as a context manager, or call `close()`. Pass `http` to bring your own
    `httpx.Client` (its base URL, timeouts, transport and event hooks are used as they are).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        http: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._http = http or httpx.Client(base_url=base_url, timeout=timeout)
        self._headers = auth_headers(api_key)
        self._sleep = sleep

    def __enter__(self) -> BoxofficeClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def send(self, call: Call[T]) -> T:
        """Send one operation, retrying as the policy allows; raise an `ApiError` on failure."""
        request = self._http.build_request(
            call.method,
            call.path,
            json=call.json,
            params=call.params or None,
            headers={**self._headers, **call.headers()},
        )
        attempt = 0
        while True:
            try:
                response = self._http.send(request)
            except httpx.TransportError as exc:
                delay = self.retry.delay_after_error(request, attempt)
                if delay is None:
                    raise TransportError(f"{call.method} {call.path}: {exc!r}") from exc
            else:
                if response.is_success:
                    return call.result.validate_json(response.content)
                delay = self.retry.delay_after_response(response, attempt)
                if delay is None:
                    raise error_for(response)
            self._sleep(delay)
            attempt += 1

    def health(self) -> Health:
        """Liveness of the API process."""
        return self.send(calls.read_health())

    def seat_map(self, showtime_id: uuid.UUID | str) -> SeatMap:
        """Every seat of a showtime: available, held, sold or blocked."""
        return self.send(calls.read_seat_map(showtime_id))

    def create_booking(
        self,
        showtime_id: uuid.UUID | str,
        seats: Sequence[str],
        email: str,
        phone: str | None = None,
        *,
        sms_opt_out: bool = False,
        idempotency_key: str | None = None,
    ) -> Booking:
        """Hold seats: a PENDING booking until `expires_at`; SeatsUnavailableError if taken."""
        call = calls.create_booking(showtime_id, seats, email, phone, idempotency_key, sms_opt_out)
        return self.send(call)

    def booking(self, booking_id: uuid.UUID | str) -> Booking:
        return self.send(calls.read_booking(booking_id))

    def pay(
        self,
        booking_id: uuid.UUID | str,
        provider: str = "test",
        outcome: str | None = "succeeded",
        *,
        idempotency_key: str | None = None,
    ) -> Payment:
        """Pay for a held booking (the `test` provider settles at once with `outcome`)."""
        return self.send(calls.create_payment(booking_id, provider, outcome, idempotency_key))

    def cancel(self, booking_id: uuid.UUID | str, *, idempotency_key: str | None = None) -> Booking:
        """Cancel a booking; its seats return to sale."""
        return self.send(calls.cancel_booking(booking_id, idempotency_key))

    def bookings(
        self,
        *,
        customer_email: str | None = None,
        status: str | None = None,
        showtime_id: uuid.UUID | str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Booking]:
        """One page of your client's bookings, newest first; pass `next_cursor` back as `cursor`.

        A key with `bookings:read:all` or `admin` lists every client's bookings.
        """
        return self.send(calls.list_bookings(customer_email, status, showtime_id, limit, cursor))

    def iter_bookings(
        self,
        *,
        customer_email: str | None = None,
        status: str | None = None,
        showtime_id: uuid.UUID | str | None = None,
        page_size: int = 50,
    ) -> Iterator[Booking]:
        """Every matching booking, fetching pages of `page_size` as needed."""
        return iterate(
            lambda cursor: self.bookings(
                customer_email=customer_email,
                status=status,
                showtime_id=showtime_id,
                limit=page_size,
                cursor=cursor,
            )
        )

    def payments(self, booking_id: uuid.UUID | str) -> list[PaymentSummary]:
        return self.send(calls.list_payments(booking_id))

    def create_venue(
        self, name: str, timezone: str = "UTC", *, idempotency_key: str | None = None
    ) -> Venue:
        return self.send(calls.create_venue(name, timezone, idempotency_key))

    def venue(self, venue_id: uuid.UUID | str) -> Venue:
        return self.send(calls.read_venue(venue_id))

    def venues(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Venue]:
        return self.send(calls.list_venues(limit, cursor))

    def iter_venues(self, *, page_size: int = 50) -> Iterator[Venue]:
        return iterate(lambda cursor: self.venues(limit=page_size, cursor=cursor))

    def create_screen(
        self,
        venue_id: uuid.UUID | str,
        name: str,
        rows: Sequence[RowSpec],
        *,
        idempotency_key: str | None = None,
    ) -> Screen:
        """A screen of `rows`, e.g. `[{"label": "A", "seats": 12, "blocked": [1]}]`."""
        return self.send(calls.create_screen(venue_id, name, rows, idempotency_key))

    def screen(self, screen_id: uuid.UUID | str) -> Screen:
        return self.send(calls.read_screen(screen_id))

    def screens(
        self, venue_id: uuid.UUID | str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[ScreenSummary]:
        return self.send(calls.list_screens(venue_id, limit, cursor))

    def create_showtime(
        self,
        screen_id: uuid.UUID | str,
        film_title: str,
        starts_at: datetime,
        ends_at: datetime,
        prices: Mapping[str, int],
        currency: str = "INR",
        *,
        idempotency_key: str | None = None,
    ) -> Showtime:
        """A showtime; `prices` maps each seat category to an amount in minor units."""
        call = calls.create_showtime(
            screen_id, film_title, starts_at, ends_at, prices, currency, idempotency_key
        )
        return self.send(call)

    def showtime(self, showtime_id: uuid.UUID | str) -> Showtime:
        return self.send(calls.read_showtime(showtime_id))

    def showtimes(
        self,
        *,
        venue_id: uuid.UUID | str | None = None,
        screen_id: uuid.UUID | str | None = None,
        on: date | None = None,
        starts_after: datetime | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Showtime]:
        """One page of showtimes in start order (`on`: a day in the venue's time zone)."""
        return self.send(calls.list_showtimes(venue_id, screen_id, on, starts_after, limit, cursor))

    def iter_showtimes(
        self,
        *,
        venue_id: uuid.UUID | str | None = None,
        screen_id: uuid.UUID | str | None = None,
        on: date | None = None,
        starts_after: datetime | None = None,
        page_size: int = 50,
    ) -> Iterator[Showtime]:
        return iterate(
            lambda cursor: self.showtimes(
                venue_id=venue_id,
                screen_id=screen_id,
                on=on,
                starts_after=starts_after,
                limit=page_size,
                cursor=cursor,
            )
        )
