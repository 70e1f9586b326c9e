"""The hold guard: losers of a seat turned away by one Redis script, before any write.

Real PostgreSQL and Redis; the app in-process, its requests from many threads at once.
PostgreSQL still decides every winner; these tests check what the guard adds: a loser leaves
no Idempotency-Key record, a retry of a stored answer is replayed, a failed hold puts its seats
back before its answer is sent, and a reservation left by a dead process lapses.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import fastapi.routing
import pytest
from boxoffice_booking.auth import hash_key
from boxoffice_booking.seat_cache import AsyncSeatCache, SeatCache, Verdict, reservation_token
from boxoffice_db.engine import session_scope
from boxoffice_messaging.redis_client import redis_client
from boxoffice_settings import get_settings
from fastapi.dependencies.utils import solve_dependencies
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from sqlalchemy import text

from tests.integration.conftest import make_catalog
from tests.support.stack import API_KEY, Stack


@pytest.fixture
def redis(stack: Stack) -> Iterator[Redis]:
    client = redis_client(stack.redis_url)
    yield client
    client.close()


def hold(client: TestClient, showtime_id: str, seats: list[str], key: str, email: str) -> Any:
    return client.post(
        "/v1/bookings",
        json={"showtime_id": showtime_id, "seats": seats, "customer": {"email": email}},
        headers={"Idempotency-Key": key},
    )


def claimed_keys(keys: list[str]) -> set[str]:
    with session_scope() as session:
        rows = session.execute(
            text("SELECT key FROM idempotency_keys WHERE key = ANY(:keys)"), {"keys": keys}
        )
        return {row.key for row in rows}


def holds_counted(result: str) -> float:
    return REGISTRY.get_sample_value("boxoffice_holds_total", {"result": result}) or 0.0


def conflicts_by_route(route: str) -> float:
    """409s of POST requests counted by the HTTP metrics for `route`."""
    labels = {"handler": route, "method": "POST", "status": "4xx"}
    return REGISTRY.get_sample_value("http_requests_total", labels) or 0.0


def warm(client: TestClient, showtime_id: str) -> None:
    assert client.get(f"/v1/showtimes/{showtime_id}/seats").status_code == 200


def test_losers_of_a_held_seat_are_refused_and_the_winners_retry_is_replayed(
    client: TestClient,
) -> None:
    showtime_id = make_catalog(client)["showtime"]["id"]
    run = uuid.uuid4().hex[:8]
    won = hold(client, showtime_id, ["A1"], f"{run}-win", "zoë@exämple.com")
    assert won.status_code == 201, won.text
    warm(client, showtime_id)
    before = holds_counted("conflict_cached")
    by_route = conflicts_by_route("/v1/bookings")
    losers = [
        hold(client, showtime_id, ["A1", "A2"], f"{run}-lose-{i}", f"ß{i}@example.com")
        for i in range(3)
    ]
    for loser in losers:
        assert loser.status_code == 409
        assert loser.json()["seats"] == ["A1"]
        assert "retry-after" not in loser.headers  # A1 is held, not in flight
    assert holds_counted("conflict_cached") == before + 3
    # Answered before routing, and still counted under the hold's route, not "none".
    assert conflicts_by_route("/v1/bookings") == by_route + 3
    # No record is left for a loser's key (its 409 is not stored: it may retry).
    assert claimed_keys([f"{run}-lose-{i}" for i in range(3)]) == set()
    # The winner's retry finds its own seat held, and still gets its stored answer.
    again = hold(client, showtime_id, ["A1"], f"{run}-win", "zoë@exämple.com")
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == won.json()
    # A2 was never reserved by the losers: it is free.
    assert hold(client, showtime_id, ["A2"], f"{run}-a2", "b@example.com").status_code == 201


def test_a_burst_on_one_seat_has_one_winner_and_every_loser_is_turned_away_before_postgresql(
    client: TestClient,
) -> None:
    showtime_id = make_catalog(client)["showtime"]["id"]
    warm(client, showtime_id)
    run = uuid.uuid4().hex[:8]
    keys = [f"{run}-{i}" for i in range(60)]
    before = {r: holds_counted(r) for r in ("conflict", "conflict_cached", "conflict_in_flight")}
    with ThreadPoolExecutor(max_workers=30) as pool:
        answers = list(
            pool.map(
                lambda k: hold(client, showtime_id, ["B3"], k, f"{k}@example.com"),
                keys,
            )
        )
    statuses = [a.status_code for a in answers]
    assert statuses.count(201) == 1, statuses
    assert statuses.count(409) == len(keys) - 1, statuses
    winner = keys[statuses.index(201)]
    with session_scope() as session:
        holders = session.execute(
            text(
                "SELECT count(*) FROM showtime_seats ss JOIN seats s ON s.id = ss.seat_id "
                "WHERE ss.showtime_id = :id AND ss.booking_id IS NOT NULL"
            ),
            {"id": showtime_id},
        ).scalar_one()
    assert holders == 1
    assert claimed_keys(keys) == {winner}
    # Every loser was turned away by the guard: while the winner was in flight (409 to retry)
    # or once it had marked the seat held. None reached PostgreSQL's row lock.
    after = {r: holds_counted(r) - before[r] for r in before}
    assert after["conflict"] == 0
    assert after["conflict_cached"] + after["conflict_in_flight"] == len(keys) - 1
    in_flight = [a for a in answers if a.headers.get("retry-after") == "1"]
    assert len(in_flight) == after["conflict_in_flight"]


def test_a_seat_in_flight_elsewhere_is_a_409_to_retry_and_free_once_released(
    client: TestClient, stack: Stack
) -> None:
    showtime_id = make_catalog(client)["showtime"]["id"]
    sid = uuid.UUID(showtime_id)
    run = uuid.uuid4().hex[:8]

    async def scenario() -> None:
        redis = AsyncRedis.from_url(stack.redis_url)
        cache = AsyncSeatCache(redis, 60)
        try:
            # Another API process has a hold of C1 in flight.
            reservation = await cache.reserve(sid, ["C1"], f"test:{run}", 0, 60)
            assert reservation is not None
            assert reservation.verdict is Verdict.RESERVED
            busy = await asyncio.to_thread(
                hold, client, showtime_id, ["C1", "C2"], f"{run}-busy", "x@example.com"
            )
            assert busy.status_code == 409
            assert busy.json()["seats"] == ["C1"]
            assert busy.headers["retry-after"] == "1"
            assert claimed_keys([f"{run}-busy"]) == set()
            # A seat map shows C1 as it was: available.
            seats = client.get(f"/v1/showtimes/{showtime_id}/seats").json()["seats"]
            assert {s["label"]: s["status"] for s in seats}["C1"] == "available"
            # That hold failed elsewhere and put C1 back: the retry wins.
            await cache.release(sid, reservation)
            retry = await asyncio.to_thread(
                hold, client, showtime_id, ["C1", "C2"], f"{run}-busy", "x@example.com"
            )
            assert retry.status_code == 201, retry.text
        finally:
            await redis.aclose()

    asyncio.run(scenario())


def test_a_reservation_left_by_a_dead_process_lapses(client: TestClient, redis: Redis) -> None:
    showtime_id = make_catalog(client)["showtime"]["id"]
    warm(client, showtime_id)
    states = SeatCache._keys(uuid.UUID(showtime_id))[0]
    lapsed = int(time.time() * 1000) - 1
    redis.hset(states, "B5", f"p:{lapsed}:deadbeef:a")
    run = uuid.uuid4().hex[:8]
    assert hold(client, showtime_id, ["B5"], f"{run}-1", "d@example.com").status_code == 201
    entry = cast(bytes | None, redis.hget(states, "B5"))
    assert entry is not None
    assert entry.startswith(b"h:")


def test_a_hold_that_fails_puts_its_seats_back_before_answering(
    client: TestClient, redis: Redis
) -> None:
    showtime_id = make_catalog(client)["showtime"]["id"]
    run = uuid.uuid4().hex[:8]
    assert hold(client, showtime_id, ["A4"], f"{run}-a4", "first@example.com").status_code == 201
    states, ready, _ = SeatCache._keys(uuid.UUID(showtime_id))
    redis.delete(ready, states)  # the cache cannot say: PostgreSQL judges A4 for the next hold
    lost = hold(client, showtime_id, ["A3", "A4"], f"{run}-both", "second@example.com")
    assert lost.status_code == 409
    assert lost.json()["seats"] == ["A4"]
    # Before that answer was sent, A3's reservation was put back (no entry: not cached).
    assert redis.hget(states, "A3") is None
    assert hold(client, showtime_id, ["A3"], f"{run}-a3", "third@example.com").status_code == 201
    # A request the idempotency middleware answers (a replay) puts its reservation back too.
    replay = hold(client, showtime_id, ["A4"], f"{run}-a4", "first@example.com")
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert redis.hget(states, "A4") is None


def test_a_retry_takes_over_the_reservation_its_dead_first_attempt_left(
    client: TestClient, stack: Stack
) -> None:
    """An API process killed between a hold's reservation and its answer: the client's retry
    (same Idempotency-Key) went on to be refused as in flight for up to 5 s."""
    showtime_id = make_catalog(client)["showtime"]["id"]
    sid = uuid.UUID(showtime_id)
    run = uuid.uuid4().hex[:8]
    key = f"{run}-retried"

    async def first_attempt_dies() -> None:
        redis = AsyncRedis.from_url(stack.redis_url)
        try:
            cache = AsyncSeatCache(redis, 60)
            token = reservation_token(hash_key(API_KEY), key)
            reservation = await cache.reserve(sid, ["C5"], f"test:{run}", 0, 60, token=token)
            assert reservation is not None
            assert reservation.verdict is Verdict.RESERVED
        finally:
            await redis.aclose()  # and never releases: its process is gone

    asyncio.run(first_attempt_dies())
    # Somebody else is still turned away while that reservation lasts...
    other = hold(client, showtime_id, ["C5"], f"{run}-other", "other@example.com")
    assert other.status_code == 409
    assert other.headers["retry-after"] == "1"
    # ...but the retry of the request itself goes on, and wins.
    retry = hold(client, showtime_id, ["C5"], key, "çava@example.com")
    assert retry.status_code == 201, retry.text


def pool_requests(client: TestClient) -> int:
    """Connections handed out by the API's asyncio pool so far."""
    return int(client.app.state.runtime.pool.get_stats()["requests_num"])  # type: ignore[attr-defined]


def test_a_hold_takes_one_pooled_connection_for_its_claim_statement_and_answer(
    client: TestClient, redis: Redis
) -> None:
    """The Idempotency-Key claim lends its connection to the hold and stores the answer on
    it: one checkout (and one liveness check) per hold instead of three (issue 18)."""
    showtime_id = make_catalog(client)["showtime"]["id"]
    run = uuid.uuid4().hex[:8]
    before = pool_requests(client)
    won = hold(client, showtime_id, ["B1", "B2"], f"{run}-won", "chloé@exämple.com")
    assert won.status_code == 201, won.text
    assert pool_requests(client) == before + 1
    # The stored answer was written on that connection: a retry is replayed.
    replay = hold(client, showtime_id, ["B1", "B2"], f"{run}-won", "chloé@exämple.com")
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == won.json()
    # A hold PostgreSQL refuses (the cache cannot say) releases its key on the same connection.
    states, ready, _ = SeatCache._keys(uuid.UUID(showtime_id))
    redis.delete(ready, states)
    before = pool_requests(client)
    lost = hold(client, showtime_id, ["B2", "B3"], f"{run}-lost", "zoë@exämple.com")
    assert lost.status_code == 409
    assert lost.json()["seats"] == ["B2"]
    assert pool_requests(client) == before + 1
    assert claimed_keys([f"{run}-lost"]) == set()


def fewest_write_transactions(action: Callable[[int], Any], expected: int) -> int:
    """Transactions that wrote (each takes a transaction id) while `action(attempt)` ran.

    Transaction ids are the whole PostgreSQL cluster's: a write anywhere else in the test run
    meanwhile (a batched task-status row, a process an earlier test left finishing) adds to
    the count and never takes from it. So the action runs again, as a new `attempt`, while
    the count is above `expected` (three times at most), and the fewest is returned: a change
    that writes more fails every attempt.
    """

    def next_xid() -> int:
        with session_scope() as session:
            return int(session.execute(text("SELECT pg_current_xact_id()::text")).scalar_one())

    counts: list[int] = []
    while len(counts) < 3 and (not counts or min(counts) > expected):
        before = next_xid()
        action(len(counts))
        counts.append(next_xid() - before - 1)  # the second probe takes one too
    return min(counts)


def test_a_held_key_is_claimed_by_the_holds_own_statement(client: TestClient) -> None:
    """Two write transactions per hold with an Idempotency-Key (the claim with the hold, then
    the stored answer) instead of three; a hold PostgreSQL refuses is its claim with the
    refusal, then the release (issue 18)."""
    showtime_id = make_catalog(client)["showtime"]["id"]
    run = uuid.uuid4().hex[:8]
    won: list[tuple[str, str, Any]] = []  # seat, key, answer

    def hold_a_seat(attempt: int) -> None:
        seat, key = f"A{6 + attempt}", f"{run}-won-{attempt}"
        won.append((seat, key, hold(client, showtime_id, [seat], key, "jürgen@exämple.com")))

    assert fewest_write_transactions(hold_a_seat, 2) == 2
    seat, key, first = won[-1]
    assert first.status_code == 201, first.text
    assert claimed_keys([key]) == {key}
    # The answer stored: a retry is replayed (its claim, an INSERT … ON CONFLICT that finds
    # the record, takes a transaction id but changes nothing).
    replays: list[Any] = []

    def retry(_: int) -> None:
        replays.append(hold(client, showtime_id, [seat], key, "jürgen@exämple.com"))

    assert fewest_write_transactions(retry, 1) == 1
    for replay in replays:
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.json() == first.json()

    refused: list[tuple[str, Any]] = []  # key, answer

    def lose(attempt: int) -> None:
        states, ready, _ = SeatCache._keys(uuid.UUID(showtime_id))
        with redis_client(get_settings().redis_url) as redis:
            redis.delete(ready, states)  # the cache cannot say: PostgreSQL refuses the seat
        lost_key = f"{run}-lost-{attempt}"
        answer = hold(client, showtime_id, [seat, "B8"], lost_key, "アキラ@example.jp")
        refused.append((lost_key, answer))

    assert fewest_write_transactions(lose, 2) == 2
    for lost_key, answer in refused:
        assert answer.status_code == 409
        assert answer.json()["seats"] == [seat]
        assert claimed_keys([lost_key]) == set()


def test_retries_of_one_hold_at_once_make_one_booking(client: TestClient) -> None:
    """A client retrying one hold while its first attempt runs (a timeout, a proxy's retry):
    whichever statement takes the key holds the seats; the others wait for it on the key and
    are answered its stored 201 or "in progress", never a second booking."""
    showtime_id = make_catalog(client)["showtime"]["id"]
    key = f"{uuid.uuid4().hex[:8]}-retried"
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(
            pool.map(
                lambda _: hold(client, showtime_id, ["C7", "C8"], key, "søren@exämple.dk"),
                range(24),
            )
        )
    statuses = sorted({a.status_code for a in answers})
    assert set(statuses) <= {201, 409}, [a.text for a in answers]
    created = [a for a in answers if a.status_code == 201]
    assert len({a.json()["id"] for a in created}) == 1
    for busy in (a for a in answers if a.status_code == 409):
        # Refused as in progress (by the key or by the seats' reservation), never as taken.
        assert busy.headers["retry-after"] == "1", busy.text
    with session_scope() as session:
        bookings = session.execute(
            text("SELECT count(*) FROM bookings WHERE customer_email = :email"),
            {"email": "søren@exämple.dk"},
        ).scalar_one()
    assert bookings == 1
    again = hold(client, showtime_id, ["C7", "C8"], key, "søren@exämple.dk")
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    if created:
        assert again.json() == created[0].json()


def test_a_key_reused_for_other_seats_is_a_422_and_holds_none_of_them(client: TestClient) -> None:
    showtime_id = make_catalog(client)["showtime"]["id"]
    run = uuid.uuid4().hex[:8]
    first = hold(client, showtime_id, ["B7"], f"{run}-once", "ada@example.com")
    assert first.status_code == 201, first.text
    reused = hold(client, showtime_id, ["B8", "C6"], f"{run}-once", "ada@example.com")
    assert reused.status_code == 422
    assert reused.json()["type"].endswith("/idempotency-key-reused")
    # The refused statement held nothing and put its reservation back.
    fresh = hold(client, showtime_id, ["B8", "C6"], f"{run}-fresh", "ada@example.com")
    assert fresh.status_code == 201, fresh.text


def test_a_claim_left_by_a_dead_process_is_taken_over_by_the_hold(client: TestClient) -> None:
    showtime_id = make_catalog(client)["showtime"]["id"]
    key = f"{uuid.uuid4().hex[:8]}-orphan"
    with session_scope() as session:
        # Claimed three minutes ago by a process that died before answering.
        session.execute(
            text(
                "INSERT INTO idempotency_keys (principal, key, method, path, request_hash,"
                " created_at, expires_at) VALUES (:principal, :key, 'POST', '/v1/bookings',"
                " 'dead', now() - interval '3 minutes', now() + interval '1 hour')"
            ),
            {"principal": hash_key(API_KEY), "key": key},
        )
    taken = hold(client, showtime_id, ["A8"], key, "zoë@exämple.com")
    assert taken.status_code == 201, taken.text
    assert "idempotent-replayed" not in taken.headers
    # A claim still fresh, of the same request, is that request in progress; of another, a 422.
    fresh = f"{key}-fresh"
    body = json.dumps(
        {"showtime_id": showtime_id, "seats": ["A5"], "customer": {"email": "zoë@exämple.com"}}
    ).encode()
    request_hash = hashlib.sha256(b"\0".join([b"POST", b"/v1/bookings", b"", body])).hexdigest()
    with session_scope() as session:
        session.execute(
            text(
                "INSERT INTO idempotency_keys (principal, key, method, path, request_hash,"
                " expires_at) VALUES (:principal, :key, 'POST', '/v1/bookings', :hash,"
                " now() + interval '1 hour')"
            ),
            {"principal": hash_key(API_KEY), "key": fresh, "hash": request_hash},
        )
    headers = {"Idempotency-Key": fresh, "Content-Type": "application/json"}
    busy = client.post("/v1/bookings", content=body, headers=headers)
    assert busy.status_code == 409
    assert busy.json()["type"].endswith("/idempotency-key-in-progress")
    other = hold(client, showtime_id, ["A5", "B1"], fresh, "zoë@exämple.com")
    assert other.status_code == 422
    assert other.json()["type"].endswith("/idempotency-key-reused")
    # Neither held A5.
    assert hold(client, showtime_id, ["A5"], f"{key}-a5", "zoë@exämple.com").status_code == 201


def test_a_reserved_hold_is_answered_as_the_handler_answers_it(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hold the guard reserved is answered without FastAPI's routing (ReservedHoldMiddleware),
    with the handler's answer: the same bytes as FastAPI's for the same booking, its headers,
    and its problems."""
    # FastAPI solves a route's dependencies for every request it routes (looked up by name at
    # call time): every request that reaches FastAPI is listed here.
    routed: list[tuple[str, str]] = []
    solve = solve_dependencies  # what fastapi.routing calls

    async def counting(*args: Any, **kwargs: Any) -> Any:
        request = kwargs["request"]
        routed.append((request.method, request.url.path))
        return await solve(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    showtime_id = make_catalog(client)["showtime"]["id"]
    run = uuid.uuid4().hex[:8]
    before = pool_requests(client)
    won = hold(client, showtime_id, ["C1", "A2"], f"{run}-won", "Ðörte.Ñúñez@exämple.com")
    assert won.status_code == 201, won.text
    assert pool_requests(client) == before + 1  # the Idempotency-Key middleware's
    assert won.headers["content-type"] == "application/json"
    assert won.headers["location"] == f"/v1/bookings/{won.json()['id']}"
    assert "request-id" in won.headers
    # FastAPI's answer for the same booking (a read through its response model) is the same.
    read = client.get(won.headers["location"])
    assert read.status_code == 200
    assert read.content == won.content
    # Without an Idempotency-Key too.
    plain = client.post(
        "/v1/bookings",
        json={"showtime_id": showtime_id, "seats": ["B4"], "customer": {"email": "o@example.com"}},
    )
    assert plain.status_code == 201, plain.text
    assert client.get(plain.headers["location"]).content == plain.content
    # The reads went through FastAPI (the list sees routed requests); the holds did not.
    assert ("GET", won.headers["location"]) in routed
    assert ("POST", "/v1/bookings") not in routed
    # A refusal from PostgreSQL (the cache cannot say) is the app's problem+json.
    states, ready, _ = SeatCache._keys(uuid.UUID(showtime_id))
    with redis_client(get_settings().redis_url) as redis:
        redis.delete(ready, states)
    lost = hold(client, showtime_id, ["A2", "A3"], f"{run}-lost", "x@example.com")
    assert lost.status_code == 409
    assert lost.headers["content-type"] == "application/problem+json"
    assert lost.json()["seats"] == ["A2"]
    assert lost.json()["instance"] == "/v1/bookings"
    assert ("POST", "/v1/bookings") not in routed, "the refusal is answered on the same path"
    # Metrics name the route.
    assert conflicts_by_route("/v1/bookings") >= 1
