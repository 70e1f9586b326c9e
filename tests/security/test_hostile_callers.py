"""The API as a real process against hostile and careless callers (issue 15).

Huge bodies with a bad key and a good one, 20,000 made-up tokens, slow bodies, huge headers,
deeply nested JSON and unicode tricks in every string field; then the process's memory is
bounded, a good key is still answered from memory, nothing was stored for a failed
authentication and no answer was a 5xx. The numbers measured are printed (`pytest -s`) and
written to `var/test/.../security-numbers.json`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import secrets
import socket
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import psycopg
import pytest
from boxoffice_db.aio import libpq_url

from tests.security.conftest import AUTH_FAILURE_LIMIT, Hostile
from tests.support.catalog import post_showtime
from tests.support.stack import Stack

MIB = 1024 * 1024
BAD_KEY_PREFIX = "sec-bad-"
TOKENS = int(os.environ.get("SECURITY_TOKENS", "20000"))
# Memory the API may hold after everything, and may grow by (it starts near 120 MiB).
RSS_CEILING_MIB = 400
RSS_GROWTH_MIB = 150


class Answers:
    """Every status the API gave in this module; none may be a 5xx."""

    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()

    def saw(self, status: int) -> int:
        self.statuses[status] += 1
        return status


@pytest.fixture(scope="module")
def answers() -> Iterator[Answers]:
    seen = Answers()
    yield seen
    assert not [s for s in seen.statuses if s >= 500], seen.statuses


@pytest.fixture(scope="module")
def numbers(stack: Stack) -> Iterator[dict[str, Any]]:
    measured: dict[str, Any] = {}
    yield measured
    print("\nsecurity numbers:", json.dumps(measured, indent=2))
    (stack.var / "security-numbers.json").write_text(json.dumps(measured, indent=2))


@pytest.fixture(scope="module")
def baseline(hostile: Hostile, numbers: dict[str, Any]) -> float:
    with httpx.Client(base_url=hostile.api.base_url, timeout=30) as http:
        for _ in range(20):
            http.get("/v1/venues", headers=good(hostile))
    numbers["rss_mib_before"] = round(hostile.rss_mib(), 1)
    return float(numbers["rss_mib_before"])


def good(hostile: Hostile) -> dict[str, str]:
    return {"Authorization": f"Bearer {hostile.api.api_key}"}


def raw_request(
    hostile: Hostile,
    head: bytes,
    body_chunks: Iterator[bytes] | None = None,
    pause: float = 0.0,
) -> int | None:
    """Send a request by hand; stop sending as soon as the server answers. Its status, or None
    if the server closed without an answer."""
    url = urlsplit(hostile.api.base_url)
    with socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout=30) as s:
        s.sendall(head)
        s.setblocking(False)
        received = b""
        try:
            for chunk in body_chunks or iter(()):
                with contextlib.suppress(BlockingIOError):
                    received += s.recv(65536)
                if received:
                    break
                s.setblocking(True)
                s.sendall(chunk)
                s.setblocking(False)
                if pause:
                    time.sleep(pause)
        except (BrokenPipeError, ConnectionResetError):
            pass
        s.setblocking(True)
        s.settimeout(30)
        try:
            while b"\r\n" not in received:
                data = s.recv(65536)
                if not data:
                    break
                received += data
        except (ConnectionResetError, TimeoutError):
            pass
    if not received.startswith(b"HTTP/1.1 "):
        return None
    return int(received[9:12])


def post_head(path: str, headers: dict[str, str], length: int | None) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(
        f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    )
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def megabytes(total: int, chunked: bool) -> Iterator[bytes]:
    piece = b"[" + b"1," * (MIB // 2 - 1) + b"1]"
    sent = 0
    while sent < total:
        sent += len(piece)
        yield (f"{len(piece):x}\r\n".encode() + piece + b"\r\n") if chunked else piece
    if chunked:
        yield b"0\r\n\r\n"


def idempotency_rows(key_prefix: str) -> int:
    from boxoffice_settings import get_settings

    with psycopg.connect(libpq_url(get_settings().database_url)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM idempotency_keys WHERE key LIKE %s", (key_prefix + "%",)
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("key", ["bad", "good"])
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_32_mib_body_is_refused_before_it_is_read(
    hostile: Hostile,
    baseline: float,
    answers: Answers,
    numbers: dict[str, Any],
    key: str,
    declared: bool,
) -> None:
    auth = (
        good(hostile)
        if key == "good"
        else {"Authorization": "Bearer bo_" + secrets.token_urlsafe(32)}
    )
    headers = {**auth, "Idempotency-Key": f"{BAD_KEY_PREFIX}{uuid.uuid4()}"}
    size = 32 * MIB
    started = time.monotonic()
    status = raw_request(
        hostile,
        post_head("/v1/bookings", headers, size if declared else None),
        megabytes(size, chunked=not declared),
    )
    numbers[f"seconds_to_413_{key}_{'declared' if declared else 'chunked'}"] = round(
        time.monotonic() - started, 3
    )
    assert status is not None
    # A declared length is refused before anything else; a streamed body is never read
    # without a valid key (401), and with one it is cut off at the cap (413).
    expected = 401 if key == "bad" and not declared else 413
    assert answers.saw(status) == expected
    numbers["rss_mib_after_32mib_bodies"] = round(hostile.rss_mib(), 1)
    assert hostile.rss_mib() < baseline + RSS_GROWTH_MIB


def test_20000_random_tokens_are_refused_throttled_and_leave_good_keys_cached(
    hostile: Hostile, baseline: float, answers: Answers, numbers: dict[str, Any]
) -> None:
    # Twenty client addresses behind the (trusted) proxy that the test process plays.
    addresses = [f"198.51.100.{n}" for n in range(1, 21)]

    url = urlsplit(hostile.api.base_url)

    def request(n: int) -> bytes:
        token = "bo_" + secrets.token_urlsafe(random.choice((8, 32, 64)))
        body = b'{"name": "x"}'
        return (
            f"POST /v1/venues HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\nIdempotency-Key: {BAD_KEY_PREFIX}{n}\r\n"
            f"X-Forwarded-For: 203.0.113.9, {addresses[n % len(addresses)]}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    async def connection(numbers: list[int]) -> list[int]:
        """Requests pipelined on one keep-alive connection (a cheap client: the server works)."""
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        statuses: list[int] = []
        for start in range(0, len(numbers), 50):
            batch = numbers[start : start + 50]
            writer.write(b"".join(request(n) for n in batch))
            await writer.drain()
            for _ in batch:
                head = await reader.readuntil(b"\r\n\r\n")
                statuses.append(int(head[9:12]))
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                    assert not (name.lower() == b"connection" and b"close" in value.lower())
                await reader.readexactly(length)
        writer.close()
        return statuses

    async def flood() -> list[int]:
        shares = [list(range(TOKENS))[k::16] for k in range(16)]
        results = await asyncio.gather(*(connection(share) for share in shares))
        return [status for result in results for status in result]

    started = time.monotonic()
    statuses = asyncio.run(flood())
    elapsed = time.monotonic() - started
    counted = Counter(statuses)
    for status, n in counted.items():
        answers.statuses[status] += n
    numbers["random_tokens"] = {
        "requests": TOKENS,
        "seconds": round(elapsed, 1),
        "per_second": round(TOKENS / elapsed),
        "statuses": {str(k): v for k, v in sorted(counted.items())},
        "rss_mib_after": round(hostile.rss_mib(), 1),
    }
    assert set(counted) <= {401, 429}
    # Each address had its budget of lookups; the rest were refused before the database.
    assert counted[401] <= AUTH_FAILURE_LIMIT * len(addresses) * 2  # a window may turn over
    assert counted[429] >= TOKENS - AUTH_FAILURE_LIMIT * len(addresses) * 2
    assert idempotency_rows(BAD_KEY_PREFIX) == 0
    assert hostile.rss_mib() < baseline + RSS_GROWTH_MIB

    # The good key is answered from this process's memory: revoked in the database just
    # after a use, it still works for the few seconds a known key is trusted. A key is trusted
    # for KEY_CACHE_SECONDS after its last lookup, not its last use, so wait that long first:
    # otherwise the use below may be answered from an entry about to lapse (the flood can take
    # just under those 5 s: it did in CI, and the revoked key's next use was a 401).
    from boxoffice_booking.auth import KEY_CACHE_SECONDS

    time.sleep(KEY_CACHE_SECONDS)
    with httpx.Client(base_url=hostile.api.base_url, timeout=30) as http:
        fresh = http.get("/v1/venues", headers=good(hostile))
        assert answers.saw(fresh.status_code) == 200
        from boxoffice_settings import get_settings

        with psycopg.connect(libpq_url(get_settings().database_url), autocommit=True) as conn:
            conn.execute("UPDATE api_keys SET revoked_at = now() WHERE name = 'bootstrap'")
        try:
            cached = http.get("/v1/venues", headers=good(hostile))
            assert answers.saw(cached.status_code) == 200
        finally:
            with psycopg.connect(libpq_url(get_settings().database_url), autocommit=True) as conn:
                conn.execute("UPDATE api_keys SET revoked_at = NULL WHERE name = 'bootstrap'")
        # An address over its budget is refused at once, whatever the key it makes up.
        throttled = http.get(
            "/v1/venues",
            headers={"Authorization": "Bearer nope", "X-Forwarded-For": addresses[0]},
        )
        assert answers.saw(throttled.status_code) == 429
        assert throttled.headers["content-type"] == "application/problem+json"
        assert int(throttled.headers["retry-after"]) >= 1


def test_a_burst_of_a_key_the_process_has_not_seen_is_one_lookup_not_a_throttle(
    hostile: Hostile, stack: Stack, answers: Answers
) -> None:
    """Found by `make bench`: 1,000 holds at once with a key the API had not resolved lately
    each spent a unit of the address's budget (some drew 429s) and a Redis connection."""
    from boxoffice_booking.auth import create_api_key
    from boxoffice_db.engine import session_scope
    from boxoffice_messaging.redis_client import redis_client

    from bench.http_client import burst, encode_request

    with session_scope() as session:
        key = create_api_key(session, f"burst-{uuid.uuid4().hex[:6]}", ["bookings:read"])
    address = f"198.51.100.{random.randint(100, 250)}"
    requests = [
        encode_request(
            "GET",
            "/v1/venues",
            "127.0.0.1",
            {"Authorization": f"Bearer {key}", "X-Forwarded-For": address},
            None,
        )
        for _ in range(3 * AUTH_FAILURE_LIMIT)
    ]
    window = int(time.time() // 3600)
    replies = asyncio.run(burst(hostile.api.base_url, requests))
    statuses = Counter(answers.saw(r.status) for r in replies)
    assert statuses == {200: len(requests)}
    # One lookup spent one unit of the address's budget; the rest waited for its answer.
    redis = redis_client(stack.redis_url)
    try:
        spent = redis.get(f"boxoffice:auththrottle:{address}:{window}")
    finally:
        redis.close()
    assert spent is not None
    assert int(spent) == 1
    assert not [line for line in hostile.log_lines() if "throttle unavailable" in line]


def test_more_concurrent_reads_than_worker_threads_are_all_answered(
    hostile: Hostile, answers: Answers
) -> None:
    """Every sync handler's job waited for a pooled connection that only a finished request's
    next job could give back: 300 reads of the venues at once hung the API for good."""
    from bench.http_client import burst, encode_request

    headers = {"Authorization": f"Bearer {hostile.api.api_key}"}
    paths = ["/v1/venues", "/v1/showtimes", "/v1/tasks/stats"]
    requests = [
        encode_request("GET", paths[i % len(paths)], "127.0.0.1", headers, None) for i in range(300)
    ]
    replies = asyncio.run(burst(hostile.api.base_url, requests))
    assert Counter(answers.saw(r.status) for r in replies) == {200: len(requests)}


def test_slow_bodies_do_not_stop_other_callers(
    hostile: Hostile, answers: Answers, numbers: dict[str, Any]
) -> None:
    url = urlsplit(hostile.api.base_url)
    body = json.dumps({"name": "Slow Ñandú"}).encode()
    head = post_head("/v1/venues", good(hostile), len(body))
    slow = []
    for _ in range(40):
        s = socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout=30)
        s.sendall(head + body[:3])
        slow.append(s)
    try:
        latencies = []
        with httpx.Client(base_url=hostile.api.base_url, timeout=30) as http:
            for _ in range(10):
                for s in slow:
                    s.sendall(b" ")  # a byte at a time, never the whole body
                started = time.monotonic()
                response = http.get("/v1/venues", headers=good(hostile))
                latencies.append(time.monotonic() - started)
                assert answers.saw(response.status_code) == 200
                time.sleep(0.1)
        numbers["slow_bodies"] = {
            "connections": len(slow),
            "max_latency_ms_of_others": round(max(latencies) * 1000, 1),
        }
        assert max(latencies) < 2.0
    finally:
        for s in slow:
            s.close()


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Huge": "x" * 200_000},
        {f"X-Many-{n}": "y" * 100 for n in range(2000)},
        {"Authorization": "Bearer " + "k" * 100_000},
        {"X-Request-Id": "r" * 60_000},
    ],
    ids=["one-200k-header", "2000-headers", "100k-token", "60k-request-id"],
)
def test_huge_headers_are_refused_without_a_5xx(
    hostile: Hostile, answers: Answers, headers: dict[str, str]
) -> None:
    lines = [
        "GET /v1/venues HTTP/1.1",
        "Host: 127.0.0.1",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    status = raw_request(hostile, ("\r\n".join(lines) + "\r\n\r\n").encode())
    # The server refuses what it will not parse (or drops the connection); never a 5xx.
    if status is not None:
        answers.saw(status)
        assert status < 500


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 200_000 + b"]" * 200_000,
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b'{"showtime_id": "x", "seats": ' + b"[" * 50_000 + b"]" * 50_000 + b', "customer": {}}',
    ],
    ids=["arrays", "objects", "inside-a-field"],
)
def test_deeply_nested_json_is_a_4xx(hostile: Hostile, answers: Answers, body: bytes) -> None:
    with httpx.Client(base_url=hostile.api.base_url, timeout=30) as http:
        response = http.post(
            "/v1/bookings",
            content=body,
            headers={**good(hostile), "Content-Type": "application/json"},
        )
    assert 400 <= answers.saw(response.status_code) < 500, response.text[:300]
    assert response.headers["content-type"] == "application/problem+json"


TRICKS = [
    "\x00",
    "nul\x00inside",
    "\u202eevil\u202c",  # right-to-left override
    "zero\u200bwidth\u200d",
    "e\u0301\u0301\u0301\u0301",  # stacked combining accents
    "\ufeffbom",
    "\uff11\uff12\uff13",  # fullwidth digits
    "\u0430dmin",  # a Cyrillic a
    "\uff21\uff24\uff2d\uff29\uff2e",  # fullwidth ADMIN
    "😀" * 50,
    "\ud800",  # a lone surrogate (JSON allows the escape)
    "Zoë Ñandú",
    "josé@exämple.com",
    "x" * 100_000,
    "../../etc/passwd",
    "'; DROP TABLE bookings; --",
    "${jndi:ldap://x}",
    "<script>alert(1)</script>",
]


def segment(text: str) -> str:
    """`text` as a percent-encoded path segment (a lone surrogate as its WTF-8 bytes)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def showtime_of(http: httpx.Client) -> tuple[str, str, str]:
    return post_showtime(
        http,
        venue=f"Tricks {uuid.uuid4().hex[:6]}",
        screen="T",
        film="T",
        seats=4,
        price=100,
        starts_in=timedelta(days=5),
    )


def test_unicode_tricks_in_every_string_field_are_never_a_5xx(
    hostile: Hostile, answers: Answers, numbers: dict[str, Any]
) -> None:
    with httpx.Client(base_url=hostile.api.base_url, headers=good(hostile), timeout=60) as http:
        venue, screen, showtime = showtime_of(http)
        booking = http.post(
            "/v1/bookings",
            json={
                "showtime_id": showtime,
                "seats": ["A1"],
                "customer": {"email": "ada@example.com"},
            },
        ).json()["id"]
        starts = (datetime.now(UTC) + timedelta(days=9)).isoformat()
        ends = (datetime.now(UTC) + timedelta(days=9, hours=2)).isoformat()

        def bodies(t: str) -> list[tuple[str, str, Any]]:
            return [
                ("POST", "/v1/venues", {"name": t}),
                ("POST", "/v1/venues", {"name": "ok", "timezone": t}),
                (
                    "POST",
                    f"/v1/venues/{venue}/screens",
                    {"name": t, "rows": [{"label": "A", "seats": 2, "category": "standard"}]},
                ),
                (
                    "POST",
                    f"/v1/venues/{venue}/screens",
                    {"name": "s", "rows": [{"label": t, "seats": 2, "category": t}]},
                ),
                (
                    "POST",
                    "/v1/showtimes",
                    {
                        "screen_id": screen,
                        "film_title": t,
                        "starts_at": starts,
                        "ends_at": ends,
                        "prices": {t: 100},
                    },
                ),
                (
                    "POST",
                    "/v1/showtimes",
                    {
                        "screen_id": t,
                        "film_title": "f",
                        "starts_at": t,
                        "ends_at": t,
                        "prices": {"standard": 1},
                    },
                ),
                (
                    "POST",
                    "/v1/bookings",
                    {
                        "showtime_id": showtime,
                        "seats": [t],
                        "customer": {"email": "ada@example.com"},
                    },
                ),
                (
                    "POST",
                    "/v1/bookings",
                    {"showtime_id": t, "seats": ["A2"], "customer": {"email": t, "phone": t}},
                ),
                (
                    "POST",
                    "/v1/bookings",
                    {
                        "showtime_id": showtime,
                        "seats": ["A2"],
                        "customer": {"email": f"{t}@exämple.com"},
                    },
                ),
                ("POST", f"/v1/bookings/{booking}/payments", {"provider": t, "outcome": t}),
                ("POST", f"/v1/payments/webhooks/{segment(t[:200])}", {"event": t}),
            ]

        def queries(t: str) -> list[tuple[str, str, dict[str, str]]]:
            return [
                ("GET", "/v1/bookings", {"customer_email": t}),
                ("GET", "/v1/bookings", {"status": t}),
                ("GET", "/v1/bookings", {"cursor": t}),
                ("GET", "/v1/bookings", {"showtime_id": t}),
                ("GET", "/v1/tasks", {"status": t, "name": t, "queue": t}),
                ("GET", f"/v1/showtimes/{showtime}/seats", {"x": t}),
            ]

        count = 0
        for t in TRICKS:
            for method, path, body in bodies(t):
                # A lone surrogate cannot be UTF-8: send it as JSON's escape, as a caller would.
                content = json.dumps(body).encode()
                response = http.request(
                    method,
                    path,
                    content=content,
                    headers={
                        "Content-Type": "application/json",
                        "Idempotency-Key": str(uuid.uuid4()),
                    },
                )
                assert answers.saw(response.status_code) < 500, (path, t[:20], response.text[:300])
                count += 1
            for method, path, params in queries(t[:2000]):  # a longer query: see huge headers
                safe = {
                    k: v.encode("utf-8", "surrogatepass").decode("latin-1")
                    for k, v in params.items()
                }
                response = http.request(method, path, params=safe)
                assert answers.saw(response.status_code) < 500, (path, t[:20], response.text[:300])
                count += 1
            for part in (segment(t[:300]), t[:300].encode("utf-8", "surrogatepass").hex()):
                for path in (
                    f"/v1/bookings/{part}",
                    f"/v1/bookings/{part}/payments",
                    f"/v1/showtimes/{part}/seats",
                ):
                    response = http.get(path)
                    assert answers.saw(response.status_code) < 500, (path[:50], response.text[:300])
                    count += 1
            raw = t.encode("utf-8", "surrogatepass")[:200]
            for name in ("Idempotency-Key", "X-Request-Id"):
                response = http.post(
                    "/v1/venues",
                    json={"name": "hdr"},
                    # Header bytes as sent (no NUL, CR or LF: those end a header line).
                    headers={name.encode(): raw.translate(None, b"\x00\r\n") or b"x"},
                )
                assert answers.saw(response.status_code) < 500
                count += 1
        # Bytes that are not UTF-8 at all.
        for junk in (
            b'{"name": "\xff\xfe\xc0\xaf"}',
            b"\xef\xbb\xbf{}",
            b'{"name": "\xed\xa0\x80"}',
        ):
            response = http.post(
                "/v1/venues", content=junk, headers={"Content-Type": "application/json"}
            )
            assert answers.saw(response.status_code) < 500, response.text[:300]
            count += 1
    numbers["unicode_trick_requests"] = count


def test_afterwards_memory_is_bounded_and_nothing_was_stored_for_failed_authentication(
    hostile: Hostile, baseline: float, answers: Answers, numbers: dict[str, Any]
) -> None:
    rss = hostile.rss_mib()
    numbers["rss_mib_after_all"] = round(rss, 1)
    numbers["statuses_seen"] = {str(k): v for k, v in sorted(answers.statuses.items())}
    assert rss < RSS_CEILING_MIB
    assert rss < baseline + RSS_GROWTH_MIB
    assert idempotency_rows(BAD_KEY_PREFIX) == 0
    hostile.api.process.assert_running()
    with httpx.Client(base_url=hostile.api.base_url, timeout=30) as http:
        assert answers.saw(http.get("/v1/venues", headers=good(hostile)).status_code) == 200
    assert not [s for s in answers.statuses if s >= 500], answers.statuses
