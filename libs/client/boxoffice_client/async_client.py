"""The asynchronous client: the same operations as `BoxofficeClient`, awaited."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import date, datetime
from types import TracebackType
from typing import TypeVar

import httpx

from boxoffice_client import calls
from boxoffice_client.calls import Call, RowSpec
from boxoffice_client.client import auth_headers
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
from boxoffice_client.pagination import aiterate
from boxoffice_client.retry import RetryPolicy

T = TypeVar("T")


class AsyncBoxofficeClient:
    """Calls the booking API from asyncio code, retrying safely like `BoxofficeClient`."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        http: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._http = http or httpx.AsyncClient(base_url=base_url, timeout=timeout)
        self._headers = auth_headers(api_key)
        self._sleep = sleep

    async def __aenter__(self) -> AsyncBoxofficeClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(self, call: Call[T]) -> T:
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
                response = await self._http.send(request)
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
            await self._sleep(delay)
            attempt += 1

    async def health(self) -> Health:
        return await self.send(calls.read_health())

    async def seat_map(self, showtime_id: uuid.UUID | str) -> SeatMap:
        return await self.send(calls.read_seat_map(showtime_id))

    async def create_booking(
        self,
        showtime_id: uuid.UUID | str,
        seats: Sequence[str],
        email: str,
        phone: str | None = None,
        *,
        sms_opt_out: bool = False,
        idempotency_key: str | None = None,
    ) -> Booking:
        call = calls.create_booking(showtime_id, seats, email, phone, idempotency_key, sms_opt_out)
        return await self.send(call)

    async def booking(self, booking_id: uuid.UUID | str) -> Booking:
        return await self.send(calls.read_booking(booking_id))

    async def pay(
        self,
        booking_id: uuid.UUID | str,
        provider: str = "test",
        outcome: str | None = "succeeded",
        *,
        idempotency_key: str | None = None,
    ) -> Payment:
        return await self.send(calls.create_payment(booking_id, provider, outcome, idempotency_key))

    async def cancel(
        self, booking_id: uuid.UUID | str, *, idempotency_key: str | None = None
    ) -> Booking:
        return await self.send(calls.cancel_booking(booking_id, idempotency_key))

    async def bookings(
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
        call = calls.list_bookings(customer_email, status, showtime_id, limit, cursor)
        return await self.send(call)

    def iter_bookings(
        self,
        *,
        customer_email: str | None = None,
        status: str | None = None,
        showtime_id: uuid.UUID | str | None = None,
        page_size: int = 50,
    ) -> AsyncIterator[Booking]:
        """Every matching booking, fetching pages of `page_size` as needed."""
        return aiterate(
            lambda cursor: self.bookings(
                customer_email=customer_email,
                status=status,
                showtime_id=showtime_id,
                limit=page_size,
                cursor=cursor,
            )
        )

    async def payments(self, booking_id: uuid.UUID | str) -> list[PaymentSummary]:
        return await self.send(calls.list_payments(booking_id))

    async def create_venue(
        self, name: str, timezone: str = "UTC", *, idempotency_key: str | None = None
    ) -> Venue:
        return await self.send(calls.create_venue(name, timezone, idempotency_key))

    async def venue(self, venue_id: uuid.UUID | str) -> Venue:
        return await self.send(calls.read_venue(venue_id))

    async def venues(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Venue]:
        return await self.send(calls.list_venues(limit, cursor))

    def iter_venues(self, *, page_size: int = 50) -> AsyncIterator[Venue]:
        return aiterate(lambda cursor: self.venues(limit=page_size, cursor=cursor))

    async def create_screen(
        self,
        venue_id: uuid.UUID | str,
        name: str,
        rows: Sequence[RowSpec],
        *,
        idempotency_key: str | None = None,
    ) -> Screen:
        """A screen of `rows`, e.g. `[{"label": "A", "seats": 12, "blocked": [1]}]`."""
        return await self.send(calls.create_screen(venue_id, name, rows, idempotency_key))

    async def screen(self, screen_id: uuid.UUID | str) -> Screen:
        return await self.send(calls.read_screen(screen_id))

    async def screens(
        self, venue_id: uuid.UUID | str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[ScreenSummary]:
        return await self.send(calls.list_screens(venue_id, limit, cursor))

    async def create_showtime(
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
        return await self.send(call)

    async def showtime(self, showtime_id: uuid.UUID | str) -> Showtime:
        return await self.send(calls.read_showtime(showtime_id))

    async def showtimes(
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
        return await self.send(
            calls.list_showtimes(venue_id, screen_id, on, starts_after, limit, cursor)
        )

    def iter_showtimes(
        self,
        *,
        venue_id: uuid.UUID | str | None = None,
        screen_id: uuid.UUID | str | None = None,
        on: date | None = None,
        starts_after: datetime | None = None,
        page_size: int = 50,
    ) -> AsyncIterator[Showtime]:
        return aiterate(
            lambda cursor: self.showtimes(
                venue_id=venue_id,
                screen_id=screen_id,
                on=on,
                starts_after=starts_after,
                limit=page_size,
                cursor=cursor,
            )
        )
