"""Scenario 2: 1,000 attempts at the same moment on the same 10 seats."""

from __future__ import annotations

import asyncio
import uuid

from boxoffice_db.engine import session_scope
from sqlalchemy import text

from bench.config import HOT_ATTEMPTS, HOT_SEATS
from bench.http_client import Reply, burst, encode_request
from bench.report import Row, ScenarioResult, number
from bench.scenarios import Context, ratio, say
from bench.seating import create_showtimes, seat_label
from bench.stats import Goal, summary_ms


def _requests(ctx: Context, url: str, showtime_id: str) -> list[bytes]:
    host = url.removeprefix("http://")
    run = uuid.uuid4().hex[:8]
    return [
        encode_request(
            "POST",
            "/v1/bookings",
            host,
            {"Authorization": f"Bearer {ctx.api_key}", "Idempotency-Key": f"hot-{run}-{i}"},
            {
                "showtime_id": showtime_id,
                "seats": [seat_label(i % HOT_SEATS)],
                "customer": {"email": f"hot{i}@example.com", "phone": "+919800000001"},
            },
        )
        for i in range(HOT_ATTEMPTS)
    ]


def _held_seats(showtime_id: str) -> int:
    with session_scope() as session:
        return int(
            session.execute(
                text(
                    "SELECT count(*) FROM showtime_seats WHERE showtime_id = :id "
                    "AND booking_id IS NOT NULL"
                ),
                {"id": showtime_id},
            ).scalar_one()
        )


def run_hot_seats(ctx: Context) -> ScenarioResult:
    result = ScenarioResult("hot_seats", "2. Hot seats (1,000 on 10 seats)")
    say(f"2. hot seats: {HOT_ATTEMPTS} attempts on {HOT_SEATS} seats")
    [showtime_id] = create_showtimes(1)
    api_url = ctx.system.api_url
    replies: list[Reply] = asyncio.run(burst(api_url, _requests(ctx, api_url, showtime_id)))
    base: list[Reply] = asyncio.run(
        burst(ctx.baseline_url, _requests(ctx, ctx.baseline_url, showtime_id))
    )

    winners = sum(r.status == 201 for r in replies)
    conflicts = sum(r.status == 409 for r in replies)
    server_errors = sum(r.status >= 500 for r in replies)
    other = len(replies) - winners - conflicts - server_errors
    held = _held_seats(showtime_id)
    latency = summary_ms([r.latency for r in replies])
    base_latency = summary_ms([r.latency for r in base])
    result.data = {
        "attempts": HOT_ATTEMPTS,
        "seats": HOT_SEATS,
        "winners": winners,
        "conflicts": conflicts,
        "server_errors": server_errors,
        "other": other,
        "seats_held_in_database": held,
        "latency": latency,
        "baseline_latency": base_latency,
    }
    result.rows = [
        Row(
            "winners / conflicts / 5xx",
            f"{winners} / {conflicts} / {server_errors}",
            f"{sum(r.status == 201 for r in base)} / 0 / 0",
        ),
        Row(
            "p50 latency",
            f"{number(latency['p50_ms'])} ms",
            f"{number(base_latency['p50_ms'])} ms",
            number(ratio(latency["p50_ms"], base_latency["p50_ms"]), 2),
        ),
        Row(
            "p99 latency",
            f"{number(latency['p99_ms'])} ms",
            f"{number(base_latency['p99_ms'])} ms",
            number(ratio(latency["p99_ms"], base_latency["p99_ms"]), 2),
            Goal(
                result.title,
                "p99 ratio to the bare endpoint's",
                round(ratio(latency["p99_ms"], base_latency["p99_ms"]), 2),
                2.0,
                True,
            ),
        ),
    ]
    if winners != HOT_SEATS or held != HOT_SEATS:
        result.failures.append(
            f"{winners} winners and {held} seats held; exactly {HOT_SEATS} expected"
        )
    if server_errors:
        result.failures.append(f"{server_errors} answers were 5xx")
    if other:
        statuses = sorted({r.status for r in replies} - {201, 409})
        result.failures.append(f"{other} answers were neither 201 nor 409: {statuses}")
    return result
