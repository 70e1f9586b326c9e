"""A rush of buyers through two real API processes: nothing is sold twice, no 5xx.

Two `boxoffice-api` processes share one PostgreSQL and one Redis. Hundreds of concurrent
hold requests for overlapping seats are spread over both; Redis is flushed in the middle;
holds lapse while others race for their seats. PostgreSQL must stay the only arbiter.

`make contention` runs the same tests with more requests (BOXOFFICE_CONTENTION_REQUESTS).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from boxoffice_db.engine import session_scope
from boxoffice_db.models import Booking, BookingStatus, SeatState, ShowtimeSeat
from boxoffice_devstack.servers import RedisServer, free_port
from boxoffice_messaging.redis_client import redis_client
from redis import Redis
from sqlalchemy import select

from tests.support.catalog import make_showtime
from tests.support.processes import ServiceProcess, wait_for_http
from tests.support.stack import API_KEY, Stack

pytestmark = pytest.mark.integration

REQUESTS = int(os.environ.get("BOXOFFICE_CONTENTION_REQUESTS", "520"))
HOLD_TTL_SECONDS = 20
ROWS, SEATS_PER_ROW = 4, 10
HEADERS = {"Authorization": f"Bearer {API_KEY}"}


@dataclass
class Cluster:
    urls: list[str]
    redis: Redis
    processes: list[ServiceProcess]


@pytest.fixture(scope="module")
def cluster(stack: Stack) -> Iterator[Cluster]:
    # A Redis of its own, so flushing it disturbs no other test.
    redis_server = RedisServer(stack.var / "contention-redis").start()
    ports = [free_port(), free_port()]
    processes = [
        ServiceProcess(
            f"api-{i}",
            "boxoffice_booking.main",
            stack.env(
                REDIS_URL=redis_server.url,
                BOXOFFICE_API_PORT=str(port),
                BOXOFFICE_HOLD_TTL_SECONDS=str(HOLD_TTL_SECONDS),
                BOXOFFICE_RATE_LIMIT_REQUESTS="0",
                BOXOFFICE_DB_POOL_SIZE="15",
                BOXOFFICE_LOG_LEVEL="WARNING",
            ),
            stack.var / "contention-logs",
        ).start()
        for i, port in enumerate(ports)
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for url in urls:
            wait_for_http(url + "/readyz", timeout=180)
        yield Cluster(urls, redis_client(redis_server.url), processes)
    finally:
        for process in processes:
            process.stop()
        redis_server.stop()


def seats_of(row: str) -> list[str]:
    return [f"{row}{n}" for n in range(1, SEATS_PER_ROW + 1)]


ALL_SEATS = [seat for row in "ABCD"[:ROWS] for seat in seats_of(row)]


def overlapping_requests(count: int, rng: random.Random) -> list[list[str]]:
    """Every seat asked for alone at least once, the rest runs of 1 to 4 adjacent seats."""
    wanted: list[list[str]] = [[seat] for seat in ALL_SEATS]
    while len(wanted) < count:
        row = rng.choice("ABCD"[:ROWS])
        size = rng.randint(1, 4)
        start = rng.randint(1, SEATS_PER_ROW - size + 1)
        wanted.append([f"{row}{n}" for n in range(start, start + size)])
    rng.shuffle(wanted)
    return wanted


async def hold_all(
    cluster: Cluster,
    showtime_id: uuid.UUID,
    wanted: list[list[str]],
    flush_after: int | None = None,
) -> list[tuple[list[str], int, dict[str, Any]]]:
    """Send every hold at once, alternating API processes; optionally flush Redis midway."""
    done = 0
    flushed = asyncio.Event()
    # No keep-alive: on a busy machine a pooled connection can sit idle past uvicorn's
    # keep-alive timeout and be closed just as it is reused (a ReadError, not an answer).
    limits = httpx.Limits(max_connections=150, max_keepalive_connections=0)
    clients = [
        httpx.AsyncClient(
            base_url=url,
            headers=HEADERS,
            # Waiting for one of the pooled connections is queueing, not a timeout.
            timeout=httpx.Timeout(120, pool=None),
            limits=limits,
        )
        for url in cluster.urls
    ]

    async def one(i: int, seats: list[str]) -> tuple[list[str], int, dict[str, Any]]:
        nonlocal done
        body = {
            "showtime_id": str(showtime_id),
            "seats": seats,
            "customer": {"email": f"buyer{i}@example.com"},
        }
        response = await clients[i % 2].post("/v1/bookings", json=body)
        done += 1
        if flush_after is not None and done >= flush_after and not flushed.is_set():
            flushed.set()
            await asyncio.to_thread(cluster.redis.flushall)
        return seats, response.status_code, response.json()

    try:
        return await asyncio.gather(*(one(i, seats) for i, seats in enumerate(wanted)))
    finally:
        for client in clients:
            await client.aclose()


def database_owners(
    showtime_id: uuid.UUID,
) -> dict[str, tuple[uuid.UUID | None, str, datetime | None]]:
    with session_scope() as session:
        rows = session.execute(
            select(
                ShowtimeSeat.label,
                ShowtimeSeat.booking_id,
                ShowtimeSeat.state,
                ShowtimeSeat.hold_expires_at,
            ).where(ShowtimeSeat.showtime_id == showtime_id)
        ).all()
    return {r.label: (r.booking_id, r.state.value, r.hold_expires_at) for r in rows}


def assert_no_double_booking(
    results: list[tuple[list[str], int, dict[str, Any]]], showtime_id: uuid.UUID
) -> dict[str, str]:
    """Every answer is 201 or 409; no seat ever had two live holds; the database agrees.

    On a slow machine a run can outlast the hold TTL, and then a later buyer rightly wins a
    lapsed seat: two winners of one seat are fine only if the second came after the first
    lapsed. Returns each seat's latest holder.
    """
    statuses = {status for _, status, _ in results}
    assert statuses <= {201, 409}, [r for r in results if r[1] not in (201, 409)][:3]
    holds_of: dict[str, list[tuple[datetime, datetime, str]]] = {}
    for seats, status, body in results:
        if status == 201:
            assert sorted(seats) == [s["label"] for s in body["seats"]]
            created = datetime.fromisoformat(body["created_at"])
            expires = datetime.fromisoformat(body["expires_at"])
            for seat in seats:
                holds_of.setdefault(seat, []).append((created, expires, body["id"]))
    for seat, seat_holds in holds_of.items():
        seat_holds.sort()
        for earlier, later in itertools.pairwise(seat_holds):
            assert later[0] >= earlier[1], f"{seat} held by {earlier[2]} and {later[2]} at once"
    owner_of = {seat: seat_holds[-1][2] for seat, seat_holds in holds_of.items()}
    for seats, status, body in results:
        if status == 409:
            assert body["type"].endswith("/seats-unavailable")
            assert body["seats"], body
            assert set(body["seats"]) <= set(seats)
            # A loser lost to somebody: each seat it was refused is a winner's.
            assert all(seat in owner_of for seat in body["seats"]), body
    owners = database_owners(showtime_id)
    for seat, (booking_id, state, _) in owners.items():
        if seat in owner_of:
            assert (str(booking_id), state) == (owner_of[seat], "held"), seat
        else:
            assert (booking_id, state) == (None, "available"), seat
    return owner_of


def assert_availability_matches_database(cluster: Cluster, showtime_id: uuid.UUID) -> None:
    """Both processes report what PostgreSQL says (the cache rebuilt after the flush)."""
    for url in cluster.urls:
        now = datetime.now(UTC)
        expected = {}
        for seat, (_, state, expires) in database_owners(showtime_id).items():
            if expires is not None and -3 < (expires - now).total_seconds() < 15:
                continue  # lapsing around now: either answer is right
            lapsed = expires is not None and expires <= now
            expected[seat] = "available" if state == "held" and lapsed else state
        seat_map = httpx.get(f"{url}/v1/showtimes/{showtime_id}/seats", headers=HEADERS).json()
        reported = {s["label"]: s["status"] for s in seat_map["seats"] if s["label"] in expected}
        assert reported == expected, url


def hold_results(url: str) -> dict[str, float]:
    """`boxoffice_holds_total` of one API process, by result."""
    counts: dict[str, float] = {}
    for line in httpx.get(url + "/metrics/", follow_redirects=True).text.splitlines():
        if line.startswith("boxoffice_holds_total{"):
            labels, value = line.rsplit(" ", 1)
            counts[labels.split('result="', 1)[1].split('"', 1)[0]] = float(value)
    return counts


def test_a_rush_of_holds_through_two_processes_sells_no_seat_twice(cluster: Cluster) -> None:
    showtime_id = make_showtime(ROWS, SEATS_PER_ROW, blocked=())
    wanted = overlapping_requests(REQUESTS, random.Random(3))
    started = time.monotonic()
    results = asyncio.run(hold_all(cluster, showtime_id, wanted, flush_after=REQUESTS // 2))
    elapsed = time.monotonic() - started

    owner_of = assert_no_double_booking(results, showtime_id)
    # Every seat was asked for alone at least once, so every seat ended up held.
    assert set(owner_of) == set(ALL_SEATS)
    winners = sum(status == 201 for _, status, _ in results)
    early = sum(
        hold_results(url).get(result, 0)
        for url in cluster.urls
        for result in ("conflict_cached", "conflict_in_flight")
    )
    print(
        f"\n{len(results)} holds in {elapsed:.1f}s: {winners} won, {len(results) - winners} 409, "
        f"{early:.0f} of them turned away by the hold guard (cache or in flight)"
    )
    for process in cluster.processes:
        process.assert_running()
        assert "Traceback" not in process.log()

    # Redis was flushed midway: the seat maps are right again, from both processes.
    assert_availability_matches_database(cluster, showtime_id)
    assert cluster.redis.exists(f"boxoffice:seats:{showtime_id}:ready")


def test_holds_that_lapse_while_others_race_go_to_the_new_holders(cluster: Cluster) -> None:
    showtime_id = make_showtime(1, SEATS_PER_ROW, blocked=())
    row = seats_of("A")
    first = asyncio.run(hold_all(cluster, showtime_id, [[seat] for seat in row] * 3))
    old_owner = assert_no_double_booking(first, showtime_id)
    assert set(old_owner) == set(row)
    with session_scope() as session:
        expires = max(
            session.scalars(
                select(Booking.expires_at).where(Booking.showtime_id == showtime_id)
            ).all()
        )

    # Racers start before the old holds lapse and keep going until every seat has a holder.
    new_owner: dict[str, str] = {}
    answers: list[int] = []
    race_from = expires.timestamp() - 2
    time.sleep(max(0.0, race_from - time.time()))
    deadline = time.monotonic() + 60
    while len(new_owner) < len(row) and time.monotonic() < deadline:
        free = [seat for seat in row if seat not in new_owner]
        wave = asyncio.run(hold_all(cluster, showtime_id, [[seat] for seat in free] * 4))
        answers += [status for _, status, _ in wave]
        for seats, status, body in wave:
            if status == 201:
                assert seats[0] not in new_owner, f"{seats[0]} held by two new bookings"
                new_owner[seats[0]] = body["id"]
        time.sleep(0.2)
    assert set(answers) <= {201, 409}
    assert set(new_owner) == set(row)
    assert not set(new_owner.values()) & set(old_owner.values())

    # The old bookings pay now: their seats are someone else's, so each is refunded (409).
    client = httpx.Client(base_url=cluster.urls[0], headers=HEADERS, timeout=30)
    for booking_id in set(old_owner.values()):
        paid = client.post(
            f"/v1/bookings/{booking_id}/payments", json={"provider": "test", "outcome": "succeeded"}
        )
        assert paid.status_code == 409, paid.text
        assert paid.json()["type"].endswith("/hold-expired")
        assert client.get(f"/v1/bookings/{booking_id}").json()["status"] == "EXPIRED"
    client.close()
    owners = database_owners(showtime_id)
    for seat in row:
        owner, state, _ = owners[seat]
        assert (str(owner), state) == (new_owner[seat], SeatState.HELD.value)
    with session_scope() as session:
        statuses = set(
            session.scalars(
                select(Booking.status).where(
                    Booking.id.in_([uuid.UUID(b) for b in new_owner.values()])
                )
            )
        )
    assert statuses == {BookingStatus.PENDING}
