"""`python -m bench`: run the scenarios, print the table, write JSON and docs/benchmarks.md."""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable

from boxoffice_devstack.servers import free_port
from boxoffice_telemetry.heap import freeze_startup_heap

from bench.capacity import validation_result
from bench.config import FULL, QUICK, Sizes
from bench.footprint import PeakSampler
from bench.machine import describe_machine
from bench.report import (
    Row,
    ScenarioResult,
    goals_summary,
    markdown_table,
    number,
    render_markdown,
    write_json,
)
from bench.scenarios import Context, ratio, say
from bench.scenarios.expiry import run_expiry
from bench.scenarios.hot_seats import run_hot_seats
from bench.scenarios.notifications import run_notifications
from bench.scenarios.throughput import run_hold_throughput
from bench.system import BENCH_VAR, ROOT, BenchSystem, start_infrastructure
from tests.support.processes import ServiceProcess, wait_for_http

DOCS = ROOT / "docs" / "benchmarks.md"
RESULTS_MARKER = "<!-- results: everything below is written by `make bench` -->"
SCENARIOS = ("1", "2", "3", "4", "5")


def footprint_result(idle: dict[str, float], loaded: dict[str, float]) -> ScenarioResult:
    result = ScenarioResult("footprint", "5. Footprint (MiB resident)")
    base_idle, base_loaded = idle.pop("bare FastAPI", 0.0), loaded.pop("bare FastAPI", 0.0)
    for name in idle:
        result.rows.append(
            Row(
                f"{name}: idle / under scenario 1", f"{number(idle[name])} / {number(loaded[name])}"
            )
        )
    result.rows.append(
        Row(
            "API vs bare FastAPI, under load",
            number(loaded.get("api", 0.0)),
            number(base_loaded),
            number(ratio(loaded.get("api", 0.0), base_loaded), 2),
        )
    )
    result.data = {
        "idle_mib": idle,
        "under_load_mib": loaded,
        "baseline_idle_mib": base_idle,
        "baseline_under_load_mib": base_loaded,
    }
    result.notes.append(
        "RSS of each process tree; PostgreSQL is PSS (shared buffers counted once); "
        "peak under load is the API's wrk run of scenario 1"
    )
    return result


def harness_error(key: str, title: str, exc: Exception) -> ScenarioResult:
    """A scenario that could not finish is reported as a failed check, and the run goes on."""
    traceback.print_exception(exc)
    result = ScenarioResult(key, title)
    result.failures.append(f"the scenario did not finish: {exc!r}")
    return result


def guarded(key: str, title: str, scenario: Callable[[], ScenarioResult]) -> ScenarioResult:
    try:
        return scenario()
    except Exception as exc:
        return harness_error(key, title, exc)


def run(
    sizes: Sizes, wanted: set[str], extra_env: dict[str, str]
) -> tuple[dict[str, object], list[ScenarioResult]]:
    started = time.monotonic()
    infra = start_infrastructure()
    infra.extra_env.update(extra_env)
    results: list[ScenarioResult] = []
    machine: dict[str, object] = {}
    try:
        machine = describe_machine(infra, sizes.name)
        api_key = infra.create_api_key()
        say("starting every service")
        system = BenchSystem(infra, "main").start()
        baseline_port = free_port()
        baseline = ServiceProcess(
            "baseline-api",
            "bench.baseline_app",
            system.env | {"BOXOFFICE_API_PORT": str(baseline_port)},
            system.logs,
        )
        try:
            baseline.start()
            baseline_url = f"http://127.0.0.1:{baseline_port}"
            wait_for_http(baseline_url + "/healthz", timeout=60)
            ctx = Context(infra, sizes, api_key, system, baseline_url)
            pids = {name: (pid, False) for name, pid in system.pids().items()}
            postgres_pid = infra.postgres_pid()
            if postgres_pid is not None:
                pids["postgresql"] = (postgres_pid, True)
            if infra.redis.process is not None:
                pids["redis"] = (infra.redis.process.pid, False)
            assert baseline.process is not None
            pids["bare FastAPI"] = (baseline.process.pid, False)
            time.sleep(2)
            idle = PeakSampler(pids).sample()
            # The load generator's own heap out of Python's full collections, as every
            # service's (boxoffice_telemetry.heap): a full collection of it stopped the paced
            # payments of scenario 4 for 19-105 ms, three to six times in its 30 s, and each
            # stop sent the payments due meanwhile at once.
            freeze_startup_heap()
            loaded: dict[str, float] = {}
            if wanted & {"1", "5"}:
                try:
                    throughput, loaded = run_hold_throughput(ctx, pids)
                except Exception as exc:
                    throughput = harness_error("hold_throughput", "1. Hold throughput", exc)
                if "1" in wanted:
                    results.append(throughput)
            if "2" in wanted:
                results.append(guarded("hot_seats", "2. Hot seats", lambda: run_hot_seats(ctx)))
            if "4" in wanted:
                results.append(
                    guarded("notifications", "4. Notifications", lambda: run_notifications(ctx))
                )
            if "3" in wanted:
                results.append(guarded("expiry_lag", "3. Expiry lag", lambda: run_expiry(ctx)))
            try:
                system.assert_running()
            except AssertionError as exc:
                results.append(harness_error("services", "0. Services", exc))
        finally:
            baseline.stop()
            system.stop()
        if "5" in wanted and loaded:
            results.append(footprint_result(idle, loaded))
    finally:
        infra.stop()
    measured = {r.key: r.data for r in results if r.data}
    if {"hold_throughput", "notifications"} <= measured.keys():
        results.append(validation_result(measured, os.cpu_count() or 1))
    results.sort(key=lambda r: r.title)
    machine["seconds"] = time.monotonic() - started
    machine["load_average_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return machine, results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the short run (under 2 minutes)")
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help="comma-separated scenario numbers (default: all)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra setting for every service (repeatable)",
    )
    parser.add_argument(
        "--docs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write docs/benchmarks.md (default: on for a full run)",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    wanted = {s.strip() for s in args.only.split(",") if s.strip()}
    if not wanted <= set(SCENARIOS):
        parser.error(f"--only takes scenario numbers from {','.join(SCENARIOS)}")
    extra_env = dict(item.split("=", 1) for item in args.env)

    machine, results = run(sizes, wanted, extra_env)

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    json_name = f"{sizes.name}-{stamp}.json"
    write_json(BENCH_VAR / json_name, machine, results)
    write_json(BENCH_VAR / f"{sizes.name}-latest.json", machine, results)
    print()
    print(markdown_table(results))
    print()
    print("\n".join(goals_summary(results)))
    print(f"\nJSON: {BENCH_VAR / json_name}")
    if args.docs if args.docs is not None else sizes is FULL:
        write_docs(render_markdown(machine, results, json_name))
        print(f"table written to {DOCS.relative_to(ROOT)}")
    if any(r.failures for r in results):
        sys.exit(1)


def write_docs(results_markdown: str) -> None:
    text = DOCS.read_text() if DOCS.exists() else RESULTS_MARKER + "\n"
    head = text.split(RESULTS_MARKER, 1)[0]
    DOCS.write_text(head + RESULTS_MARKER + "\n\n" + results_markdown)


if __name__ == "__main__":
    main()
