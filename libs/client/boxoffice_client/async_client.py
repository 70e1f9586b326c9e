"""The asynchronous client: the same operations as `BoxofficeClient`, awaited."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import TypeVar

import httpx

from boxoffice_client import calls
from boxoffice_client.calls import Call
from boxoffice_client.client import auth_headers
from boxoffice_client.errors import TransportError, error_for
from boxoffice_client.models import Booking, Health, Payment, SeatMap
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
