"""AsyncBoxofficeClient against the live API: the same contract, awaited."""

from __future__ import annotations

import asyncio

import pytest
from boxoffice_client import AsyncBoxofficeClient, RetryPolicy, SeatsUnavailableError

from tests.support.catalog import make_showtime
from tests.support.faulty_proxy import Answer, FaultyProxy
from tests.support.live_api import LiveApi
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

FAST = RetryPolicy(max_attempts=4, backoff_base=0.05, backoff_max=0.2)


def test_books_pays_and_cancels(api: LiveApi, stack: Stack) -> None:
    showtime_id = make_showtime(rows=2, seats_per_row=5)

    async def scenario() -> None:
        async with AsyncBoxofficeClient(api.base_url, api.api_key) as client:
            assert (await client.health()).status == "ok"
            booking = await client.create_booking(showtime_id, ["B1"], "ada@example.com")
            payment = await client.pay(booking.id)
            assert payment.booking.status == "CONFIRMED"
            assert (await client.cancel(booking.id)).status == "CANCELLED"
            assert "B1" in (await client.seat_map(showtime_id)).available()

    asyncio.run(scenario())


def test_concurrent_holds_on_one_seat_have_one_winner_and_conflicts_for_the_rest(
    api: LiveApi, stack: Stack
) -> None:
    showtime_id = make_showtime(rows=2, seats_per_row=5)

    async def scenario() -> list[object]:
        async with AsyncBoxofficeClient(api.base_url, api.api_key, retry=FAST) as client:
            holds = [
                client.create_booking(showtime_id, ["A3"], f"buyer{i}@example.com")
                for i in range(6)
            ]
            return list(await asyncio.gather(*holds, return_exceptions=True))

    results = asyncio.run(scenario())
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, SeatsUnavailableError)]
    assert len(winners) == 1
    assert len(losers) == 5
    assert all(loser.seats == ["A3"] for loser in losers)


def test_a_503_is_retried_with_the_same_idempotency_key(
    api: LiveApi, proxy: FaultyProxy, stack: Stack
) -> None:
    showtime_id = make_showtime(rows=2, seats_per_row=5)
    proxy.inject(Answer(503, retry_after="0"), Answer(503))

    async def scenario() -> str:
        async with AsyncBoxofficeClient(proxy.url, api.api_key, retry=FAST) as client:
            return (await client.create_booking(showtime_id, ["B4"], "ada@example.com")).status

    assert asyncio.run(scenario()) == "PENDING"
    attempts = proxy.requests_to("POST", "/v1/bookings")
    assert len(attempts) == 3
    assert len({a.idempotency_key for a in attempts}) == 1
