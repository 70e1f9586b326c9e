"""The Redis seat cache: fast reads, early 409s, rebuilt after a flush, never authoritative."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from boxoffice_booking.seat_cache import SeatCache
from boxoffice_messaging.redis_client import redis_client
from fastapi.testclient import TestClient

from tests.integration.conftest import hold, make_catalog
from tests.support.stack import Stack


@pytest.fixture
def cache(stack: Stack) -> Iterator[SeatCache]:
    redis = redis_client(stack.redis_url)
    yield SeatCache(redis, 60)
    redis.close()


def test_a_cold_cache_is_rebuilt_from_postgresql(client: TestClient, cache: SeatCache) -> None:
    showtime_id = make_catalog(client)["showtime"]["id"]
    assert hold(client, showtime_id, ["A1", "A2"]).status_code == 201
    for key in cache.redis.scan_iter(f"boxoffice:seats:{showtime_id}*"):
        cache.redis.delete(key)  # as a FLUSHALL would
    sid = uuid.UUID(showtime_id)
    assert cache.taken(sid, ["A1"]) is None  # the cache cannot say: PostgreSQL decides
    seats = client.get(f"/v1/showtimes/{showtime_id}/seats").json()["seats"]
    assert {s["label"]: s["status"] for s in seats}["A1"] == "held"
    assert cache.taken(sid, ["A1", "A3"]) == ["A1"]
    assert cache.states(sid) is not None


def test_a_rebuild_racing_a_seat_change_does_not_overwrite_it(
    client: TestClient, cache: SeatCache
) -> None:
    sid = uuid.UUID(make_catalog(client)["showtime"]["id"])
    states, ready, dirty = keys = SeatCache._keys(sid)
    assert not cache.redis.exists(ready)
    cache.redis.delete(dirty)  # a rebuild starts, then reads the database: all available
    cache.mark(sid, {"B1": "s"})  # a sale commits while the rebuild is reading
    assert cache._fill(keys=keys, args=[60, "B1", "a", "B2", "a"]) == 1
    # The cache is warm, with the sale kept and the rest of the snapshot written.
    assert cache.redis.exists(ready)
    assert cache.redis.hget(states, "B1") == b"s"
    assert cache.redis.hget(states, "B2") == b"a"
    assert not cache.redis.exists(dirty)
    assert cache.taken(sid, ["B1", "B2"]) == ["B1"]


def test_the_cache_only_turns_away_it_never_lets_through(
    client: TestClient, cache: SeatCache
) -> None:
    showtime_id = make_catalog(client)["showtime"]["id"]
    sid = uuid.UUID(showtime_id)
    assert hold(client, showtime_id, ["B2"]).status_code == 201
    client.get(f"/v1/showtimes/{showtime_id}/seats")  # warm
    # Corrupt the cache into saying B2 is free: PostgreSQL still refuses the second hold.
    cache.redis.hset(SeatCache._keys(sid)[0], "B2", "a")
    loser = hold(client, showtime_id, ["B2"], "second@example.com")
    assert loser.status_code == 409
    assert loser.json()["seats"] == ["B2"]
