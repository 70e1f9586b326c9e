"""Scenario 1 (hold throughput) and 5 (footprint under it): wrk against the API and the baseline."""

from __future__ import annotations

import math
import time

from bench.config import CONNECTIONS
from bench.footprint import PeakSampler, cpu_seconds
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
    api_pid, _ = footprint_pids["api"]
    base_pid, _ = footprint_pids["bare FastAPI"]
    pg_pid = footprint_pids.get("postgresql", (0, True))[0]
    api_cpu, pg_cpu = cpu_seconds(api_pid), cpu_seconds(pg_pid) if pg_pid else 0.0
    with PeakSampler(footprint_pids) as sampler:
        holds = _load(ctx, api, sizes.wrk_seconds, showtimes)
    api_cpu, pg_cpu = (
        cpu_seconds(api_pid) - api_cpu,
        (cpu_seconds(pg_pid) if pg_pid else 0.0) - pg_cpu,
    )
    base_cpu = cpu_seconds(base_pid)
    baseline = _load(ctx, base, sizes.wrk_seconds, showtimes)
    base_cpu = cpu_seconds(base_pid) - base_cpu
    api_ms = api_cpu * 1000 / max(holds.requests, 1)
    pg_ms = pg_cpu * 1000 / max(holds.requests, 1)
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
    }
    result.rows = [
        Row(
            "holds/s (201s)",
            number(holds_per_second),
            number(baseline.per_second),
            number(throughput_ratio, 3),
            Goal(result.title, "throughput ratio", round(throughput_ratio, 3), 0.25, False),
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
        ),
        Row("PostgreSQL CPU per hold", f"{number(pg_ms, 2)} ms"),
    ]
    unexpected = holds.requests - created
    if unexpected or holds.socket_errors:
        result.failures.append(
            f"{unexpected} of {holds.requests} holds were not 201 "
            f"(statuses {holds.statuses}, socket errors {holds.socket_errors})"
        )
    if baseline.count(2) != baseline.requests or baseline.socket_errors:
        result.failures.append(f"baseline answered {baseline.statuses}")
    return result, dict(sampler.peaks)
