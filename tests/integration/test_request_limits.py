"""Limits before work: body caps, authentication before the Idempotency-Key claim, the
negative key cache, and the per-address throttle for requests without a valid key."""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from boxoffice_booking.auth import KeyCache, Principal, create_api_key, forget_cached_keys
from boxoffice_booking.limits import client_address, trusted_networks
from boxoffice_db.aio import libpq_url
from boxoffice_db.engine import session_scope
from boxoffice_settings import get_settings
from fastapi.testclient import TestClient

from tests.support.live_api import live_api
from tests.support.stack import API_KEY, Stack

VENUE = {"name": "Zoë Ñandú Hall"}


def idempotency_rows(key: str) -> int:
    with psycopg.connect(libpq_url(get_settings().database_url)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM idempotency_keys WHERE key = %s", (key,)
        ).fetchone()
    assert row is not None
    return int(row[0])


@contextmanager
def app_with(**env: str) -> Iterator[TestClient]:
    """Another app of the same stack with some settings changed (read when it is made)."""
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        from boxoffice_booking.app import create_app

        with TestClient(create_app(), raise_server_exceptions=False) as client:
            yield client
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"].endswith("/" + slug)
    return body


def test_a_body_declared_larger_than_the_cap_is_a_413_before_authentication(
    app_env: None,
) -> None:
    with app_with(BOXOFFICE_API_MAX_BODY_BYTES="2048") as client:
        key = str(uuid.uuid4())
        response = client.post(
            "/v1/venues",
            content=b"{" + b" " * 4096 + b"}",
            headers={**bearer("made-up"), "Idempotency-Key": key},
        )
        body = assert_problem(response, 413, "payload-too-large")
        assert body["limit"] == 2048
        assert idempotency_rows(key) == 0


def test_a_streamed_body_past_the_cap_is_a_413_and_nothing_is_stored(app_env: None) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(8):
            yield b"x" * 1024
        yield b'"}'

    with app_with(BOXOFFICE_API_MAX_BODY_BYTES="4096") as client:
        key = str(uuid.uuid4())
        response = client.post(
            "/v1/venues",
            content=chunks(),  # no Content-Length: chunked
            headers={**bearer(API_KEY), "Idempotency-Key": key, "Content-Type": "application/json"},
        )
        assert_problem(response, 413, "payload-too-large")
        assert idempotency_rows(key) == 0
        # Within the cap, the same route works.
        small = client.post("/v1/venues", json=VENUE, headers=bearer(API_KEY))
        assert small.status_code == 201, small.text


def test_a_webhook_has_a_smaller_cap_than_the_api(client: TestClient) -> None:
    limit = get_settings().webhook_max_body_bytes
    assert limit < get_settings().api_max_body_bytes
    response = client.post("/v1/payments/webhooks/razorpay", content=b"x" * (limit + 1))
    assert_problem(response, 413, "payload-too-large")


@pytest.fixture(scope="module")
def anonymous(app_env: None) -> Iterator[TestClient]:
    """A client that sends no API key unless a test gives one."""
    with app_with() as client:
        yield client


@pytest.mark.parametrize("authorization", [None, "Bearer made-up-key", "Basic abc", "Bearer "])
def test_a_malformed_body_without_a_valid_key_is_a_401_not_a_400_or_422(
    anonymous: TestClient, authorization: str | None
) -> None:
    headers = {"Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())}
    if authorization is not None:
        headers["Authorization"] = authorization
    for content in (b"{not json", b'{"name": 42, "extra": []}'):
        response = anonymous.post("/v1/venues", content=content, headers=headers)
        assert_problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"
    assert idempotency_rows(headers["Idempotency-Key"]) == 0


def test_a_made_up_key_with_an_idempotency_key_stores_nothing(client: TestClient) -> None:
    key = str(uuid.uuid4())
    for _ in range(3):
        response = client.post(
            "/v1/venues", json=VENUE, headers={**bearer("bo_madeup"), "Idempotency-Key": key}
        )
        assert_problem(response, 401, "unauthorized")
    assert idempotency_rows(key) == 0


def test_a_403_is_not_stored_so_the_key_works_once_the_scope_is_granted(
    client: TestClient,
) -> None:
    with session_scope() as session:
        reader = create_api_key(session, "reader", ["bookings:read"])
    key = str(uuid.uuid4())
    response = client.post(
        "/v1/venues", json=VENUE, headers={**bearer(reader), "Idempotency-Key": key}
    )
    assert_problem(response, 403, "forbidden")
    assert idempotency_rows(key) == 0


def test_the_negative_cache_is_bounded_and_never_evicts_a_good_key() -> None:
    cache = KeyCache(negative_size=100)
    good = Principal(str(uuid.uuid4()), ["bookings:read"], "good")
    cache.remember("good", good)
    for n in range(10_000):
        cache.remember(f"bad-{n}", None)
    assert len(cache.unknown) == 100
    assert cache.known_unknown("bad-9999")
    assert not cache.known_unknown("bad-0")
    assert cache.fresh("good") is good


def test_a_flood_of_unknown_keys_leaves_good_keys_answered_from_memory(app_env: None) -> None:
    with session_scope() as session:
        good = create_api_key(session, "flooded", ["bookings:read"])
    with app_with(BOXOFFICE_NEGATIVE_KEY_CACHE_SIZE="50") as client:
        assert client.get("/v1/venues", headers=bearer(good)).status_code == 200
        for n in range(300):
            response = client.get("/v1/venues", headers=bearer(f"bo_flood_{n}"))
            assert response.status_code == 401
        # Revoked in the database: still answered, so from this process's memory.
        with psycopg.connect(libpq_url(get_settings().database_url), autocommit=True) as conn:
            conn.execute("UPDATE api_keys SET revoked_at = now() WHERE name = 'flooded'")
        assert client.get("/v1/venues", headers=bearer(good)).status_code == 200
        forget_cached_keys()
        assert client.get("/v1/venues", headers=bearer(good)).status_code == 401


def test_requests_without_a_valid_key_are_throttled_per_address_and_good_keys_are_not(
    app_env: None,
) -> None:
    # A long window, so that the test does not straddle two.
    limits = {"BOXOFFICE_AUTH_FAILURE_LIMIT": "5", "BOXOFFICE_AUTH_FAILURE_WINDOW_SECONDS": "3600"}
    forget_cached_keys()  # whatever earlier tests taught this process
    with app_with(**limits) as client:
        # The first sighting of a good key in a process counts too; known-good from here on.
        assert client.get("/v1/venues", headers=bearer(API_KEY)).status_code == 200
        # The test client's address is `testclient`; another app (a replica) shares the count.
        statuses = [
            client.get("/v1/venues", headers=bearer(f"bad-{n}")).status_code for n in range(2)
        ]
        with app_with(**limits) as replica:
            statuses += [replica.post("/v1/venues", content=b"{").status_code for _ in range(2)]
            throttled = replica.get("/v1/venues", headers=bearer("bad-again"))
        assert statuses == [401] * 4
        body = assert_problem(throttled, 429, "authentication-throttled")
        assert 1 <= int(throttled.headers["retry-after"]) <= 3600
        assert body["retry_after"] == int(throttled.headers["retry-after"])
        assert client.get("/v1/venues", headers=bearer(API_KEY)).status_code == 200
        # Health probes need no key and are never throttled.
        assert client.get("/healthz").status_code == 200


def scope_from(peer: str, forwarded: str | None = None) -> dict[str, Any]:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    return {"type": "http", "client": (peer, 5000), "headers": headers}


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        # No trusted proxy in the path: the header is whatever the client wrote.
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),
        # Through the ingress: the hop it saw.
        ("10.0.0.5", "198.51.100.1", "198.51.100.1"),
        # A client that prepends a forged address is still seen as itself.
        ("10.0.0.5", "1.2.3.4, 198.51.100.1", "198.51.100.1"),
        # Two trusted hops (a load balancer then the ingress).
        ("10.0.0.5", "198.51.100.1, 10.0.0.7", "198.51.100.1"),
        # IPv6, and a hop with a port.
        ("10.0.0.5", "[2001:db8::1]:443", "2001:db8::1"),
        # An unreadable hop: the nearest readable one.
        ("10.0.0.5", "garbage, 10.0.0.7", "10.0.0.7"),
        # From a trusted proxy without the header: the proxy.
        ("10.0.0.5", None, "10.0.0.5"),
    ],
)
def test_the_client_address_believes_x_forwarded_for_only_through_trusted_proxies(
    peer: str, forwarded: str | None, expected: str
) -> None:
    trusted = trusted_networks(("10.0.0.0/8", "::1"))
    assert client_address(scope_from(peer, forwarded), trusted) == expected


def test_without_trusted_proxies_x_forwarded_for_is_ignored() -> None:
    assert client_address(scope_from("127.0.0.1", "198.51.100.1"), ()) == "127.0.0.1"


def test_every_v1_route_but_webhooks_needs_an_api_key(client: TestClient) -> None:
    """`requires_api_key`'s path rule is what the routes' dependencies say."""
    from boxoffice_booking.auth import authenticate, requires_api_key
    from fastapi.dependencies.models import Dependant
    from fastapi.routing import iter_route_contexts

    def calls(dependant: Dependant) -> set[Any]:
        found = {dependant.call}
        for sub in dependant.dependencies:
            found |= calls(sub)
        return found

    app: Any = client.app
    routes = [r for r in iter_route_contexts(app.routes) if hasattr(r, "dependant")]
    assert len(routes) > 10
    for route in routes:
        needs_key = authenticate in calls(route.dependant)
        assert needs_key == requires_api_key(str(route.path)), route.path


def _raw_post(base_url: str, key: str, body: bytes, declared: int) -> socket.socket:
    """A connection that has sent a POST's headers and `body`, which may be short of `declared`."""
    host, port = base_url.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)), timeout=30)
    head = (
        "POST /v1/venues HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        f"Authorization: Bearer {API_KEY}\r\n"
        f"Idempotency-Key: {key}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    )
    conn.sendall(head.encode() + body)
    return conn


def _read_all(conn: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    return data


def test_a_body_that_stops_arriving_is_a_408_and_the_connection_closes(stack: Stack) -> None:
    body = json.dumps({"name": f"Sala Åsa {uuid.uuid4().hex[:6]}"}).encode()
    with live_api(stack, BOXOFFICE_API_BODY_READ_TIMEOUT_SECONDS="1") as api:
        # Half the body, then nothing: refused after the timeout, nothing stored or done.
        stalled_key = str(uuid.uuid4())
        started = time.monotonic()
        with _raw_post(api.base_url, stalled_key, body[: len(body) // 2], len(body)) as conn:
            answer = _read_all(conn)  # returns once the server closes the connection
        waited = time.monotonic() - started
        head, _, payload = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"content-type: application/problem+json" in head.lower()
        assert b"connection: close" in head.lower()
        problem = json.loads(payload)
        assert problem["type"].endswith("/request-timeout")
        assert problem["timeout"] == 1.0
        assert problem["request_id"]
        assert 1.0 <= waited < 20
        assert idempotency_rows(stalled_key) == 0
        # A slow but steady body (a piece every 0.4 s, 2 s in all) is not a stalled one.
        steady_key = str(uuid.uuid4())
        pieces = [body[i : i + 8] for i in range(0, len(body), 8)]
        with _raw_post(api.base_url, steady_key, pieces[0], len(body)) as conn:
            for piece in pieces[1:]:
                time.sleep(2.0 / len(pieces))
                conn.sendall(piece)
            reply = conn.recv(65536)
        assert reply.startswith(b"HTTP/1.1 201"), reply[:300]
        assert idempotency_rows(steady_key) == 1
