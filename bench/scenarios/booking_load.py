"""Holds and payments sent through the API by the asyncio client."""

from __future__ import annotations

import uuid

from bench.http_client import Client, Reply
from bench.seating import SEATS_PER_SHOWTIME, seat_label


class Booker:
    """Holds seat `i` of a list of bench showtimes (each index once), and pays bookings."""

    def __init__(self, client: Client, showtimes: list[str]) -> None:
        self.client = client
        self.showtimes = showtimes
        self.run = uuid.uuid4().hex[:8]

    async def hold(self, i: int) -> Reply:
        return await self.client.request(
            "POST",
            "/v1/bookings",
            {
                "showtime_id": self.showtimes[i // SEATS_PER_SHOWTIME],
                "seats": [seat_label(i % SEATS_PER_SHOWTIME)],
                "customer": {"email": f"fan{i}@example.com", "phone": "+919800000001"},
            },
            **{"Idempotency-Key": f"hold-{self.run}-{i}"},
        )

    async def pay(self, booking_id: str) -> Reply:
        return await self.client.request(
            "POST",
            f"/v1/bookings/{booking_id}/payments",
            {"provider": "test", "outcome": "succeeded"},
            **{"Idempotency-Key": f"pay-{self.run}-{booking_id}"},
        )
