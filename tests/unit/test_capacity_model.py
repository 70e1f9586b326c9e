"""The capacity model (bench/capacity.py): its arithmetic, its check against a run, its doc."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.capacity import (
    Plan,
    load_inputs,
    plan,
    plans_markdown,
    predict_bench,
    validation_result,
    workload_load,
)

ROOT = Path(__file__).resolve().parents[2]


def plans() -> list[Plan]:
    costs, platform, workloads = load_inputs()
    return [plan(workload_load(n, s, platform), costs, platform) for n, s in workloads.items()]


def test_replicas_cover_the_cpu_at_the_target_utilisation() -> None:
    costs, platform, workloads = load_inputs()
    load = workload_load("regional", workloads["regional"], platform)
    result = plan(load, costs, platform)
    api_cores = (
        load.holds * costs.api_cpu_ms_per_hold
        + load.payments * costs.api_cpu_ms_per_payment
        + load.seat_maps * costs.api_cpu_ms_per_seat_map
    ) / 1000
    assert result.api_replicas == math.ceil(api_cores / platform.target_utilisation)
    assert result.redis_instances * platform.redis_commands_per_second >= result.redis_commands
    assert [share for _, share in result.walls] == sorted(
        (share for _, share in result.walls), reverse=True
    )
    # Twice the holds never needs fewer of anything.
    bigger = plan(replace(load, holds=load.holds * 2), costs, platform)
    assert bigger.api_replicas > result.api_replicas
    assert bigger.postgres_cores > result.postgres_cores


def test_the_three_workloads_of_the_issue_are_planned() -> None:
    names = [p.load.name for p in plans()]
    assert names == ["onsale", "steady", "regional"]
    onsale, _, regional = plans()
    assert onsale.load.holds == 50000 / 300 * 3.0 * 1.6
    assert regional.load.holds == 5000
    assert regional.walls[0][0] == "one Redis (single thread)"
    assert regional.walls[0][1] > 1


def test_the_doc_shows_what_the_model_computes_from_its_inputs() -> None:
    table = plans_markdown(plans()).splitlines()[2:]  # the rows, without the header
    doc = (ROOT / "docs" / "capacity.md").read_text()
    missing = [row for row in table if row not in doc]
    assert not missing, (
        f"docs/capacity.md is stale (python -m bench.capacity --markdown): {missing}"
    )


def test_a_run_is_checked_within_25_percent() -> None:
    costs, platform, _ = load_inputs()
    scenarios: dict[str, dict[str, Any]] = {
        "hold_throughput": {
            "api_cpu_ms_per_hold": 2.0,
            "postgres_cpu_ms_per_hold": 1.0,
            "holds_per_second": 0.0,
            "other_jobs_cores": 0.0,
        },
        "notifications": {
            "backlog": {
                "api_cpu_ms_per_payment": 8.0,
                "postgres_cpu_ms_per_payment": 1.0,
                "notifier_cpu_ms_per_email": 7.0,
                "postgres_cpu_ms_per_email": 1.0,
                "api_confirmations_per_second": 0.0,
                "emails_per_second": 0.0,
            },
            "steady": {"relay_cpu_ms_per_booking": 3.0},
        },
    }
    predicted = predict_bench(
        replace(
            costs,
            api_cpu_ms_per_hold=2.0,
            postgres_cpu_ms_per_hold=1.0,
            api_cpu_ms_per_payment=8.0,
            postgres_cpu_ms_per_payment=1.0,
            notifier_cpu_ms_per_email=7.0,
            postgres_cpu_ms_per_email=1.0,
            relay_cpu_ms_per_booking=3.0,
        ),
        platform,
        cores=2,
    )
    # One API process at 85 % of a core: 425 holds/s at 2 ms each.
    assert math.isclose(predicted["holds_per_second"], 425.0)
    scenarios["hold_throughput"]["holds_per_second"] = predicted["holds_per_second"] * 1.1
    backlog = scenarios["notifications"]["backlog"]
    backlog["api_confirmations_per_second"] = predicted["api_confirmations_per_second"]
    backlog["emails_per_second"] = predicted["backlog_emails_per_second"] * 2  # the model is off
    result = validation_result(scenarios, cores=2)
    verdicts = {row.metric: row.goal.met for row in result.rows if row.goal}
    assert verdicts == {
        "holds per second": True,
        "api confirmations per second": True,
        "backlog emails per second": False,
    }
