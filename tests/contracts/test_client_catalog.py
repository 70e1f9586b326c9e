"""boxoffice_client against the live API: the catalog, pagination, and a lost response."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from boxoffice_client import AsyncBoxofficeClient, BoxofficeClient, RetryPolicy, aiterate

from tests.support.faulty_proxy import DropResponse, FaultyProxy
from tests.support.live_api import LiveApi

pytestmark = pytest.mark.integration

FAST = RetryPolicy(max_attempts=4, backoff_base=0.05, backoff_max=0.2)


@pytest.fixture
def client(api: LiveApi) -> Iterator[BoxofficeClient]:
    with BoxofficeClient(api.base_url, api.api_key, retry=FAST) as client:
        yield client


def build_showtimes(client: BoxofficeClient, count: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """A venue with one screen and `count` showtimes on following days; their ids."""
    venue = client.create_venue(f"Client Cinema {uuid.uuid4().hex[:8]}", "Asia/Kolkata")
    screen = client.create_screen(
        venue.id,
        "Screen 1",
        [
            {"label": "A", "seats": 6, "blocked": [1]},
            {"label": "B", "seats": 6, "category": "premium"},
        ],
    )
    assert screen.capacity == 11  # A1 is blocked
    assert [row.label for row in screen.rows] == ["A", "B"]
    first = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    showtimes = [
        client.create_showtime(
            screen.id,
            f"Film {i}",
            first + timedelta(days=i),
            first + timedelta(days=i, hours=2),
            {"standard": 20000, "premium": 35000},
        ).id
        for i in range(count)
    ]
    return venue.id, showtimes


def test_builds_a_catalog_and_walks_every_page_of_it(client: BoxofficeClient) -> None:
    venue_id, showtime_ids = build_showtimes(client, 5)
    assert client.venue(venue_id).timezone == "Asia/Kolkata"
    page = client.showtimes(venue_id=venue_id, limit=2)
    assert len(page.items) == 2
    assert page.next_cursor is not None
    walked = [s.id for s in client.iter_showtimes(venue_id=venue_id, page_size=2)]
    assert walked == showtime_ids  # start order, each once, across three pages
    seat_map = client.seat_map(showtime_ids[0])
    assert {s.label: s.price_minor for s in seat_map.seats}["B3"] == 35000
    assert "A1" not in seat_map.available()
    assert [s.name for s in client.screens(venue_id).items] == ["Screen 1"]


def test_pages_through_a_customers_bookings_newest_first(client: BoxofficeClient) -> None:
    _, (showtime_id,) = build_showtimes(client, 1)
    email = f"pager-{uuid.uuid4().hex[:8]}@example.com"
    seats = ["A2", "A3", "A4", "A5", "A6"]
    made = [client.create_booking(showtime_id, [seat], email).id for seat in seats]
    walked = [b.id for b in client.iter_bookings(customer_email=email, page_size=2)]
    assert walked == made[::-1]
    client.pay(made[0])
    confirmed = client.bookings(customer_email=email, status="CONFIRMED").items
    assert [b.id for b in confirmed] == [made[0]]
    assert [p.status for p in client.payments(made[0])] == ["succeeded"]


def test_a_response_lost_after_the_api_booked_is_retried_and_books_once(
    api: LiveApi, client: BoxofficeClient, proxy: FaultyProxy
) -> None:
    _, (showtime_id,) = build_showtimes(client, 1)
    email = f"lost-{uuid.uuid4().hex[:8]}@example.com"
    proxy.inject(DropResponse())
    with BoxofficeClient(proxy.url, api.api_key, retry=FAST) as through_proxy:
        booking = through_proxy.create_booking(showtime_id, ["B2", "B3"], email)
    attempts = proxy.requests_to("POST", "/v1/bookings")
    assert len(attempts) == 2
    assert attempts[0].idempotency_key == attempts[1].idempotency_key
    # The API acted on the first attempt; the retry got that answer back, not a second hold
    # (nor a 409 for its own seats).
    assert [b.id for b in client.iter_bookings(customer_email=email)] == [booking.id]


def test_the_async_client_walks_pages_too(api: LiveApi, client: BoxofficeClient) -> None:
    venue_id, showtime_ids = build_showtimes(client, 3)

    async def walk() -> list[uuid.UUID]:
        async with AsyncBoxofficeClient(api.base_url, api.api_key) as boxoffice:
            return [
                s.id
                async for s in aiterate(
                    lambda cursor: boxoffice.showtimes(venue_id=venue_id, limit=1, cursor=cursor)
                )
            ]

    assert asyncio.run(walk()) == showtime_ids
