"""A PostgreSQL or Redis outage is answered `503` problem+json with Retry-After, never `500`.

The API runs as a real process whose database and Redis connections go through TCP proxies;
cutting a proxy is what a restart or a fail-over looks like from the API's side.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from tests.support.catalog import make_showtime
from tests.support.live_api import LiveApi, live_api
from tests.support.processes import wait_until
from tests.support.stack import Stack
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration


def through(proxy_of: list[TcpProxy], url: str) -> str:
    """`url` reaching its server through a new proxy (TCP, or PostgreSQL's Unix socket)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if "host" in query:  # postgresql://user@/db?host=<socket dir>
        socket_dir = Path(query.pop("host")[0])
        [socket_file] = [p for p in socket_dir.glob(".s.PGSQL.*") if p.suffix != ".lock"]
        upstream: tuple[str, int] | str = str(socket_file)
    else:
        assert parts.hostname is not None
        assert parts.port is not None
        upstream = (parts.hostname, parts.port)
    proxy = TcpProxy(upstream).start()
    proxy_of.append(proxy)
    user, _, _ = parts.netloc.rpartition("@")
    host = f"127.0.0.1:{proxy.port}"
    return urlunsplit(
        parts._replace(
            netloc=f"{user}@{host}" if user else host, query=urlencode(query, doseq=True)
        )
    )


@pytest.fixture(scope="module")
def outage_api(stack: Stack) -> Iterator[tuple[LiveApi, TcpProxy, TcpProxy]]:
    proxies: list[TcpProxy] = []
    database_url = through(proxies, stack.database_url)
    redis_url = through(proxies, stack.redis_url)
    try:
        with live_api(stack, "outage-api", DATABASE_URL=database_url, REDIS_URL=redis_url) as api:
            yield api, proxies[0], proxies[1]
    finally:
        for proxy in proxies:
            proxy.stop()


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["type"].endswith("/service-unavailable")


def test_a_database_outage_is_a_503_with_retry_after(
    outage_api: tuple[LiveApi, TcpProxy, TcpProxy],
) -> None:
    """Issue 14, finding 9: reads and writes during a PostgreSQL outage."""
    api, database, _ = outage_api
    showtime_id = make_showtime(rows=1, seats_per_row=6)
    headers = {"Authorization": f"Bearer {api.api_key}"}
    customer = {"email": "zoë@exämple.com"}
    with httpx.Client(base_url=api.base_url, headers=headers, timeout=30) as client:
        made = client.post(
            "/v1/bookings",
            json={"showtime_id": str(showtime_id), "seats": ["A2"], "customer": customer},
        )
        assert made.status_code == 201, made.text
        booking_id = made.json()["id"]
        assert client.get(f"/v1/bookings/{booking_id}").status_code == 200

        database.cut()
        try:
            assert_unavailable(client.get(f"/v1/bookings/{booking_id}"))
            assert_unavailable(client.get("/v1/bookings", params={"showtime_id": str(showtime_id)}))
            assert_unavailable(
                client.post(
                    "/v1/bookings",
                    json={"showtime_id": str(showtime_id), "seats": ["A3"], "customer": customer},
                    headers={"Idempotency-Key": str(uuid.uuid4())},
                )
            )
            assert_unavailable(client.post(f"/v1/bookings/{booking_id}/cancel"))
        finally:
            database.restore()
        # Once PostgreSQL is back, the pools reconnect and the same read succeeds again.
        wait_until(
            lambda: client.get(f"/v1/bookings/{booking_id}").status_code == 200,
            30,
            "the API to read from PostgreSQL again",
            interval=0.5,
        )
        # The hold's asyncio pool too: no connection the outage broke is handed out again
        # (the cut closed each one, and a closed one is replaced at checkout, not pinged:
        # boxoffice_db.liveness).
        for seat in ("A4", "A5", "A6"):
            held = client.post(
                "/v1/bookings",
                json={"showtime_id": str(showtime_id), "seats": [seat], "customer": customer},
                headers={"Idempotency-Key": str(uuid.uuid4())},
            )
            assert held.status_code == 201, held.text


def test_a_redis_outage_is_never_a_500(outage_api: tuple[LiveApi, TcpProxy, TcpProxy]) -> None:
    """Redis only speeds things up: without it requests succeed, or answer 503, never 500."""
    api, _, redis = outage_api
    showtime_id = make_showtime(rows=1, seats_per_row=6)
    headers = {"Authorization": f"Bearer {api.api_key}"}
    with httpx.Client(base_url=api.base_url, headers=headers, timeout=30) as client:
        redis.cut()
        try:
            answers = [
                client.post(
                    "/v1/bookings",
                    json={
                        "showtime_id": str(showtime_id),
                        "seats": ["A4"],
                        "customer": {"email": "redis@example.com"},
                    },
                ),
                client.get(f"/v1/showtimes/{showtime_id}/seats"),
                client.get("/v1/bookings", params={"showtime_id": str(showtime_id)}),
            ]
        finally:
            redis.restore()
    for response in answers:
        assert response.status_code < 500 or response.status_code == 503, response.text
        if response.status_code == 503:
            assert_unavailable(response)
