"""Scenario 1 (hold throughput) and 5 (footprint under it): wrk against the API and the baseline."""

from __future__ import annotations

import asyncio
import math
import time

from boxoffice_messaging.redis_client import redis_client
from redis import Redis

from bench.config import CONNECTIONS
from bench.costs import CostMeter
from bench.footprint import PeakSampler, cpu_seconds
from bench.http_client import Client, closed_loop
from bench.report import Row, ScenarioResult, number
from bench.scenarios import Context, ratio, say
from bench.seating import ROWS, SEATS_PER_ROW, SEATS_PER_SHOWTIME, create_showtimes
from bench.stats import Goal
from bench.wrk import WrkResult, run_wrk


def _load(ctx: Context, url: str, seconds: int, showtimes: list[str]) -> WrkResult:
    return run_wrk(
        url + "/v1/bookings",
        ctx.api_key,
        showtimes,
        SEATS_PER_ROW,
        ROWS,
        seconds,
        CONNECTIONS,
    )


def _cost_pids(footprint_pids: dict[str, tuple[int, bool]]) -> dict[str, int]:
    names = ("api", "postgresql", "redis")
    return {name: footprint_pids[name][0] for name in names if name in footprint_pids}


def _seat_map_reads(
    ctx: Context, showtime: str, pids: dict[str, int], redis: Redis
) -> dict[str, float]:
    """CPU per seat-map read (a busy showtime's map, as buyers refresh it during an on-sale)."""
    count = ctx.sizes.seat_map_reads

    async def go() -> int:
        async with Client(ctx.system.api_url, ctx.api_key, 8) as client:
            replies = await closed_loop(
                8, count, lambda _: client.request("GET", f"/v1/showtimes/{showtime}/seats")
            )
            return sum(1 for r in replies if r.status == 200)

    meter = CostMeter(pids, redis).start()
    started = time.perf_counter()
    ok = asyncio.run(go())
    seconds = time.perf_counter() - started
    meter.stop()
    return {
        "reads": count,
        "ok": ok,
        "reads_per_second": round(count / seconds, 1),
        "api_cpu_ms_per_read": round(meter.cpu_ms_per("api", count), 3),
        "postgres_cpu_ms_per_read": round(meter.cpu_ms_per("postgresql", count), 3),
        "redis_commands_per_read": round(meter.commands_per(count), 2),
    }


def run_hold_throughput(
    ctx: Context, footprint_pids: dict[str, tuple[int, bool]]
) -> tuple[ScenarioResult, dict[str, float]]:
    """Holds/s and latency through the real API vs the bare endpoint; peak memory meanwhile."""
    result = ScenarioResult("hold_throughput", "1. Hold throughput (64 connections)")
    sizes = ctx.sizes
    api, base = ctx.system.api_url, ctx.baseline_url

    # Warm both servers up (imports, pools, JIT-free but cache-warm), and size the seat stock
    # from the warm-up rate so the measured run never runs out of fresh seats.
    say("1. hold throughput: warming up the API and the baseline")
    [warm_showtime] = create_showtimes(1)
    warm = _load(ctx, api, sizes.wrk_warmup_seconds, [warm_showtime])
    _load(ctx, base, sizes.wrk_warmup_seconds, [warm_showtime])
    expected = max(warm.per_second, 200.0) * 3 * sizes.wrk_seconds
    showtimes = create_showtimes(math.ceil(expected / SEATS_PER_SHOWTIME))

    say(f"1. hold throughput: wrk, {CONNECTIONS} connections, {sizes.wrk_seconds} s each")
    time.sleep(1)
    # CPU time per request is steadier than requests/s on a shared machine: it does not
    # depend on how much of the CPU other jobs left us.
    base_pid, _ = footprint_pids["bare FastAPI"]
    redis = redis_client(ctx.infra.redis.url)
    meter = CostMeter(_cost_pids(footprint_pids), redis).start()
    with PeakSampler(footprint_pids) as sampler:
        holds = _load(ctx, api, sizes.wrk_seconds, showtimes)
    meter.stop()
    base_cpu = cpu_seconds(base_pid)
    baseline = _load(ctx, base, sizes.wrk_seconds, showtimes)
    base_cpu = cpu_seconds(base_pid) - base_cpu
    api_ms = meter.cpu_ms_per("api", holds.requests)
    pg_ms = meter.cpu_ms_per("postgresql", holds.requests)
    reads = _seat_map_reads(ctx, showtimes[0], _cost_pids(footprint_pids), redis)
    redis.close()
    base_ms = base_cpu * 1000 / max(baseline.requests, 1)

    created = holds.statuses.get(201, 0)
    holds_per_second = created / holds.seconds
    throughput_ratio = ratio(holds_per_second, baseline.per_second)
    result.data = {
        "connections": CONNECTIONS,
        "api": holds.as_dict(),
        "baseline": baseline.as_dict(),
        "holds_per_second": round(holds_per_second, 1),
        "ratio": round(throughput_ratio, 3),
        "warmup_holds_per_second": round(warm.per_second, 1),
        "api_cpu_ms_per_hold": round(api_ms, 2),
        "postgres_cpu_ms_per_hold": round(pg_ms, 2),
        "baseline_cpu_ms_per_request": round(base_ms, 3),
        "redis_cpu_ms_per_hold": round(meter.cpu_ms_per("redis", holds.requests), 3),
        "redis_commands_per_hold": round(meter.commands_per(holds.requests), 2),
        "other_jobs_cores": round(meter.other_jobs_cores, 2),
        "seat_map": reads,
    }
    result.rows = [
        Row(
            "holds/s (201s)",
            number(holds_per_second),
            number(baseline.per_second),
            number(throughput_ratio, 3),
            Goal(result.title, "throughput ratio", round(throughput_ratio, 3), 0.30, False),
        ),
        Row(
            "p50 latency",
            f"{number(holds.p50_ms)} ms",
            f"{number(baseline.p50_ms)} ms",
            number(ratio(holds.p50_ms, baseline.p50_ms), 2),
        ),
        Row(
            "p99 latency",
            f"{number(holds.p99_ms)} ms",
            f"{number(baseline.p99_ms)} ms",
            number(ratio(holds.p99_ms, baseline.p99_ms), 2),
            Goal(result.title, "p99 latency", holds.p99_ms, 50, True, " ms"),
        ),
    ]
    result.rows += [
        Row(
            "API CPU per request",
            f"{number(api_ms, 2)} ms",
            f"{number(base_ms, 2)} ms",
            number(ratio(api_ms, base_ms), 1),
            Goal(result.title, "API CPU per hold", round(api_ms, 2), 1.6, True, " ms"),
        ),
        Row(
            "PostgreSQL CPU per hold",
            f"{number(pg_ms, 2)} ms",
            goal=Goal(result.title, "PostgreSQL CPU per hold", round(pg_ms, 2), 1.0, True, " ms"),
        ),
        Row("Redis commands per hold", number(meter.commands_per(holds.requests), 1)),
        Row(
            "seat map: API / PostgreSQL CPU per read",
            f"{number(reads['api_cpu_ms_per_read'], 2)} / "
            f"{number(reads['postgres_cpu_ms_per_read'], 2)} ms",
        ),
    ]
    if reads["ok"] != reads["reads"]:
        result.failures.append(f"{reads['reads'] - reads['ok']} seat-map reads were not 200")
    unexpected = holds.requests - created
    if unexpected or holds.socket_errors:
        result.failures.append(
            f"{unexpected} of {holds.requests} holds were not 201 "
            f"(statuses {holds.statuses}, socket errors {holds.socket_errors})"
        )
    if baseline.count(2) != baseline.requests or baseline.socket_errors:
        result.failures.append(f"baseline answered {baseline.statuses}")
    return result, dict(sampler.peaks)
