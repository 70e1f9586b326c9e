"""Scenario 3: holds with a short TTL expiring over a spread, with 1 and then 3 reaper replicas."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import asdict, dataclass

from boxoffice_db.engine import session_scope
from sqlalchemy import text

from bench.http_client import Client, paced
from bench.report import Row, ScenarioResult, number
from bench.scenarios import Context, ratio, say
from bench.scenarios.booking_load import Booker
from bench.seating import SEATS_PER_SHOWTIME, create_showtimes
from bench.stats import Goal, summary_ms
from bench.system import BenchSystem
from tests.support.processes import wait_until


def _pending(showtimes: list[str]) -> int:
    with session_scope() as session:
        return int(
            session.execute(
                text(
                    "SELECT count(*) FROM bookings WHERE status = 'PENDING' "
                    "AND showtime_id = ANY(CAST(:ids AS uuid[]))"
                ),
                {"ids": showtimes},
            ).scalar_one()
        )


def _lags(showtimes: list[str]) -> list[float]:
    """Seconds from each hold's expires_at to the reaper marking it EXPIRED."""
    with session_scope() as session:
        rows = session.execute(
            text(
                "SELECT EXTRACT(EPOCH FROM expired_at - expires_at) FROM bookings "
                "WHERE status = 'EXPIRED' AND showtime_id = ANY(CAST(:ids AS uuid[]))"
            ),
            {"ids": showtimes},
        ).scalars()
        return [max(0.0, float(lag)) for lag in rows]


async def _create_holds(
    url: str, api_key: str, showtimes: list[str], count: int, rate: float
) -> int:
    async with Client(url, api_key, 32) as client:
        booker = Booker(client, showtimes)
        replies = await paced(rate, count, booker.hold)
    return sum(r.status == 201 for r in replies)


@dataclass
class ExpiryRun:
    reapers: int
    holds: int
    created: int
    expired: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float


def measure_expiry(system: BenchSystem, api_key: str, holds: int, spread: int) -> ExpiryRun:
    """Create `holds` holds evenly over `spread` seconds and time their expiry."""
    reapers = sum(name.startswith("reaper") for name in system.processes)
    say(f"3. expiry lag: {holds} holds over {spread} s, {reapers} reaper(s)")
    showtimes = create_showtimes(math.ceil(holds / SEATS_PER_SHOWTIME))
    started = time.monotonic()
    created = asyncio.run(_create_holds(system.api_url, api_key, showtimes, holds, holds / spread))
    wait_until(lambda: _pending(showtimes) == 0, 120, "every hold to expire", interval=0.5)
    system.assert_running()
    lags = _lags(showtimes)
    return ExpiryRun(
        reapers=reapers,
        holds=holds,
        created=created,
        expired=len(lags),
        seconds=round(time.monotonic() - started, 1),
        **summary_ms(lags),
    )


def run_expiry(ctx: Context) -> ScenarioResult:
    """Runs last on the main system: its API is restarted with a short hold TTL."""
    holds, spread, ttl = (
        ctx.sizes.expiry_holds,
        ctx.sizes.expiry_spread_seconds,
        ctx.sizes.expiry_ttl_seconds,
    )
    result = ScenarioResult("expiry_lag", f"3. Expiry lag ({holds:,} holds over {spread} s)")
    system = ctx.system
    system.restart("api", BOXOFFICE_HOLD_TTL_SECONDS=str(ttl))
    one = measure_expiry(system, ctx.api_key, holds, spread)
    system.add_reapers(3)
    three = measure_expiry(system, ctx.api_key, holds, spread)
    result.data = {
        "ttl_seconds": ttl,
        "spread_seconds": spread,
        "one_reaper": asdict(one),
        "three_reapers": asdict(three),
    }
    for label, run in (("1 reaper", one), ("3 reapers", three)):
        versus_one = run is three
        result.rows.append(
            Row(f"{label}: p50 / max lag", f"{number(run.p50_ms)} / {number(run.max_ms)} ms")
        )
        result.rows.append(
            Row(
                f"{label}: p99 lag",
                f"{number(run.p99_ms)} ms",
                f"{number(one.p99_ms)} ms" if versus_one else "",
                number(ratio(run.p99_ms, one.p99_ms), 2) if versus_one else "",
                Goal(result.title, f"p99 lag, {label}", run.p99_ms / 1000, 1, True, " s"),
            )
        )
        if run.created != holds or run.expired != run.created:
            result.failures.append(
                f"{label}: {run.created} of {holds} holds created, {run.expired} expired"
            )
    result.notes.append(
        "baseline for 3 reapers is the 1-reaper run; the sweep is periodic "
        "(BOXOFFICE_REAPER_SWEEP_INTERVAL_SECONDS), so lag is spread over one interval"
    )
    return result
