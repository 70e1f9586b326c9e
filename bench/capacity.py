"""The capacity model: replicas, PostgreSQL cores and connections, and Redis commands per second
for a workload, from the per-operation costs the bench measures (docs/capacity.md).

    python -m bench.capacity                       # the three workloads of bench/capacity.toml
    python -m bench.capacity --from-run var/bench/quick-latest.json   # with a run's own costs
    python -m bench.capacity --markdown            # the tables of docs/capacity.md

The same arithmetic predicts the bench's own figures on this machine (`predict_bench`), and
`make bench` checks those predictions against what it measured (`validation_result`).
"""

from __future__ import annotations

import argparse
import json
import math
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from bench.report import Row, ScenarioResult
from bench.stats import Goal

INPUTS = Path(__file__).with_name("capacity.toml")
TOLERANCE = 0.25  # the model must predict the bench's figures within ±25 %


@dataclass(frozen=True)
class Costs:
    """Per-operation costs (milliseconds of CPU, Redis commands)."""

    api_cpu_ms_per_hold: float
    postgres_cpu_ms_per_hold: float
    redis_commands_per_hold: float
    api_cpu_ms_per_payment: float
    postgres_cpu_ms_per_payment: float
    api_cpu_ms_per_seat_map: float
    postgres_cpu_ms_per_seat_map: float
    redis_commands_per_seat_map: float
    notifier_cpu_ms_per_email: float
    postgres_cpu_ms_per_email: float
    redis_commands_per_email: float
    relay_cpu_ms_per_booking: float


@dataclass(frozen=True)
class Platform:
    process_utilisation: float
    target_utilisation: float
    redis_commands_per_second: float
    postgres_max_cores: float
    pooled_connections_per_core: float
    seat_lock_ms: float
    messages_per_confirmation: float


@dataclass(frozen=True)
class Load:
    """Operations per second at a workload's peak."""

    name: str
    description: str
    holds: float
    payments: float
    seat_maps: float
    messages: float
    hot_seat_attempts: float  # hold attempts per second on the single most contended seat


@dataclass(frozen=True)
class Plan:
    load: Load
    api_replicas: int
    notifier_replicas: int
    relay_replicas: int
    postgres_cores: float
    pooled_connections: int
    redis_commands: float
    redis_instances: int
    walls: list[tuple[str, float]]  # (resource, share of its ceiling), most loaded first


def _take(cls: Any, table: dict[str, Any]) -> Any:
    return cls(**{f.name: float(table[f.name]) for f in fields(cls)})


def load_inputs(path: Path = INPUTS) -> tuple[Costs, Platform, dict[str, dict[str, Any]]]:
    data = tomllib.loads(path.read_text())
    return _take(Costs, data["costs"]), _take(Platform, data["platform"]), data["workloads"]


def scenario_data(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Scenario key -> its figures, from a bench run's JSON."""
    return {key: scenario["data"] for key, scenario in run["scenarios"].items()}


def costs_from_run(scenarios: dict[str, dict[str, Any]], fallback: Costs) -> Costs:
    """The costs a bench run measured, where it measured them."""
    held = scenarios.get("hold_throughput", {})
    seat_map = held.get("seat_map", {})
    backlog = scenarios.get("notifications", {}).get("backlog", {})
    steady = scenarios.get("notifications", {}).get("steady", {})
    measured = {
        "api_cpu_ms_per_hold": held.get("api_cpu_ms_per_hold"),
        "postgres_cpu_ms_per_hold": held.get("postgres_cpu_ms_per_hold"),
        "redis_commands_per_hold": held.get("redis_commands_per_hold"),
        "api_cpu_ms_per_seat_map": seat_map.get("api_cpu_ms_per_read"),
        "postgres_cpu_ms_per_seat_map": seat_map.get("postgres_cpu_ms_per_read"),
        "redis_commands_per_seat_map": seat_map.get("redis_commands_per_read"),
        "api_cpu_ms_per_payment": backlog.get("api_cpu_ms_per_payment"),
        "postgres_cpu_ms_per_payment": backlog.get("postgres_cpu_ms_per_payment"),
        "notifier_cpu_ms_per_email": backlog.get("notifier_cpu_ms_per_email"),
        "postgres_cpu_ms_per_email": backlog.get("postgres_cpu_ms_per_email"),
        "redis_commands_per_email": backlog.get("redis_commands_per_email"),
        "relay_cpu_ms_per_booking": steady.get("relay_cpu_ms_per_booking"),
    }
    values = {f.name: getattr(fallback, f.name) for f in fields(Costs)}
    values.update({k: float(v) for k, v in measured.items() if v is not None})
    return Costs(**values)


def workload_load(name: str, spec: dict[str, Any], platform: Platform) -> Load:
    """Peak operations per second of one workload of the inputs file."""
    hot = float(spec.get("hot_share", 0.0))
    hot_seats = max(float(spec.get("hot_seats", 1)), 1.0)
    if "buyers" in spec:  # an on-sale
        buyers_per_second = spec["buyers"] / spec["window_seconds"] * spec["peak_factor"]
        holds = buyers_per_second * spec["hold_attempts_per_buyer"]
        bookings = spec["seats"] / spec["seats_per_booking"]
        # Nearly every booking is made in the peak minutes: they are paid at the peak rate too.
        payments = min(bookings / 60.0, buyers_per_second)
        seat_maps = buyers_per_second * spec["seat_map_reads_per_buyer"]
        unpaid = 0.0
    elif "bookings_per_day" in spec:  # steady daily traffic
        paid_per_second = spec["bookings_per_day"] / 86400 * spec["peak_factor"]
        holds = paid_per_second * spec["hold_attempts_per_booking"] / (1 - spec["unpaid_share"])
        payments = paid_per_second
        seat_maps = paid_per_second * spec["seat_map_reads_per_booking"]
        unpaid = holds * spec["unpaid_share"]
    else:  # a rate of holds
        holds = float(spec["holds_per_second"])
        payments = holds * spec["paid_share"]
        seat_maps = holds * spec["seat_map_reads_per_hold"]
        unpaid = holds - payments
    messages = payments * platform.messages_per_confirmation + unpaid
    return Load(
        name,
        str(spec["description"]),
        holds,
        payments,
        seat_maps,
        messages,
        holds * hot / hot_seats,
    )


def plan(load: Load, costs: Costs, platform: Platform) -> Plan:
    """What to provision for a load's peak, and which wall it meets first."""
    target = platform.target_utilisation
    api_cores = (
        load.holds * costs.api_cpu_ms_per_hold
        + load.payments * costs.api_cpu_ms_per_payment
        + load.seat_maps * costs.api_cpu_ms_per_seat_map
    ) / 1000
    notifier_cores = load.messages * costs.notifier_cpu_ms_per_email / 1000
    # Each booking, paid or expired, is one event for the relay (its outcome; a hold writes
    # none since issue 19, so a cost measured before, with the hold's event too, overstates).
    unpaid = load.messages - load.payments * platform.messages_per_confirmation
    relay_cores = (load.payments + unpaid) * costs.relay_cpu_ms_per_booking / 1000
    postgres_cores = (
        load.holds * costs.postgres_cpu_ms_per_hold
        + load.payments * costs.postgres_cpu_ms_per_payment
        + load.seat_maps * costs.postgres_cpu_ms_per_seat_map
        + load.messages * costs.postgres_cpu_ms_per_email
    ) / 1000
    redis_commands = (
        load.holds * costs.redis_commands_per_hold
        + load.seat_maps * costs.redis_commands_per_seat_map
        + load.messages * costs.redis_commands_per_email
    )
    provisioned_postgres = postgres_cores / target
    walls = [
        ("one PostgreSQL primary", provisioned_postgres / platform.postgres_max_cores),
        ("one Redis (single thread)", redis_commands / platform.redis_commands_per_second),
        (
            "a hot seat's row lock",
            load.hot_seat_attempts * platform.seat_lock_ms / 1000,
        ),
    ]
    walls.sort(key=lambda wall: wall[1], reverse=True)
    return Plan(
        load=load,
        api_replicas=max(2, math.ceil(api_cores / target)),
        notifier_replicas=max(1, math.ceil(notifier_cores / target)),
        relay_replicas=max(1, math.ceil(relay_cores / target)),
        postgres_cores=round(provisioned_postgres, 1),
        pooled_connections=max(
            10, math.ceil(provisioned_postgres * platform.pooled_connections_per_core)
        ),
        redis_commands=round(redis_commands),
        redis_instances=max(
            1, math.ceil(redis_commands / (platform.redis_commands_per_second * target))
        ),
        walls=walls,
    )


def predict_bench(
    costs: Costs, platform: Platform, cores: float, others: dict[str, float] | None = None
) -> dict[str, float]:
    """The bench's own throughput figures on a machine of `cores` CPUs, from the costs alone.

    Each figure is bounded by its busiest single process (one API process, one notifier
    process) and by the cores left to the system, shared with PostgreSQL, Redis and the relay;
    `others` gives, per figure, the cores that jobs outside the bench kept busy meanwhile."""
    busy = platform.process_utilisation
    others = others or {}

    def bounded(name: str, process_ms: float, machine_ms: float) -> float:
        left = max(cores - others.get(name, 0.0), 0.05)
        return min(busy * min(left, 1.0) * 1000 / process_ms, left * 1000 / machine_ms)

    return {
        "holds_per_second": bounded(
            "holds_per_second",
            costs.api_cpu_ms_per_hold,
            costs.api_cpu_ms_per_hold + costs.postgres_cpu_ms_per_hold,
        ),
        "api_confirmations_per_second": bounded(
            "api_confirmations_per_second",
            costs.api_cpu_ms_per_payment,
            costs.api_cpu_ms_per_payment + costs.postgres_cpu_ms_per_payment,
        ),
        "backlog_emails_per_second": bounded(
            "backlog_emails_per_second",
            costs.notifier_cpu_ms_per_email,
            costs.notifier_cpu_ms_per_email
            + costs.relay_cpu_ms_per_booking
            + costs.postgres_cpu_ms_per_email,
        ),
    }


def other_jobs(scenarios: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Cores that jobs outside the bench used while each figure was measured."""
    backlog = scenarios.get("notifications", {}).get("backlog", {})
    return {
        "holds_per_second": scenarios.get("hold_throughput", {}).get("other_jobs_cores", 0.0),
        "api_confirmations_per_second": backlog.get("other_jobs_cores_payments", 0.0),
        "backlog_emails_per_second": backlog.get("other_jobs_cores_drain", 0.0),
    }


def measured_bench(scenarios: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The same figures as `predict_bench`, as a bench run measured them."""
    figures: dict[str, float] = {}
    if "hold_throughput" in scenarios:
        figures["holds_per_second"] = scenarios["hold_throughput"]["holds_per_second"]
    backlog = scenarios.get("notifications", {}).get("backlog")
    if backlog:
        figures["api_confirmations_per_second"] = backlog["api_confirmations_per_second"]
        figures["backlog_emails_per_second"] = backlog["emails_per_second"]
    return figures


def within(predicted: float, measured: float) -> bool:
    return measured > 0 and abs(predicted - measured) / measured <= TOLERANCE


def validation_result(
    scenarios: dict[str, dict[str, Any]], cores: int, inputs: Path = INPUTS
) -> ScenarioResult:
    """The model's predictions of this run's figures from this run's costs, each a goal:
    within ±25 % of what was measured."""
    result = ScenarioResult("capacity_model", "6. Capacity model (predicted from CPU per op)")
    fallback, platform, _ = load_inputs(inputs)
    costs = costs_from_run(scenarios, fallback)
    others = other_jobs(scenarios)
    predicted = predict_bench(costs, platform, cores, others)
    for name, value in measured_bench(scenarios).items():
        error = (predicted[name] - value) / value if value else math.nan
        result.rows.append(
            Row(
                name.replace("_", " "),
                _number(predicted[name]),
                _number(value),
                f"{error:+.0%}",
                Goal(result.title, f"{name} error", round(abs(error), 3), TOLERANCE, True),
            )
        )
    result.data = {"costs": asdict(costs), "predicted": predicted, "other_jobs_cores": others}
    result.notes.append(
        "value: predicted from this run's CPU per operation and the cores other jobs left "
        f"({', '.join(f'{v:.2f}' for v in others.values())} busy elsewhere) "
        "(bench/capacity.py); baseline: measured; ratio: the model's error"
    )
    return result


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def plans_markdown(plans: list[Plan]) -> str:
    lines = [
        "| | " + " | ".join(p.load.name for p in plans) + " |",
        "|---|" + "---|" * len(plans),
    ]
    rows: list[tuple[str, list[str]]] = [
        ("holds/s at the peak", [_number(p.load.holds) for p in plans]),
        ("payments/s", [_number(p.load.payments) for p in plans]),
        ("seat-map reads/s", [_number(p.load.seat_maps) for p in plans]),
        ("messages/s (email, SMS, notices)", [_number(p.load.messages) for p in plans]),
        ("API replicas (1 core each)", [str(p.api_replicas) for p in plans]),
        ("notifier replicas (1 core each)", [str(p.notifier_replicas) for p in plans]),
        ("relay replicas", [str(p.relay_replicas) for p in plans]),
        ("PostgreSQL cores (primary)", [_number(p.postgres_cores) for p in plans]),
        ("PostgreSQL connections (through PgBouncer)", [str(p.pooled_connections) for p in plans]),
        ("Redis commands/s", [_number(p.redis_commands) for p in plans]),
        ("Redis instances (queues sharded)", [str(p.redis_instances) for p in plans]),
        (
            "first wall (share of its ceiling)",
            [f"{p.walls[0][0]} ({p.walls[0][1]:.0%})" for p in plans],
        ),
    ]
    lines += [f"| {name} | " + " | ".join(values) + " |" for name, values in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__)
    parser.add_argument("--inputs", type=Path, default=INPUTS)
    parser.add_argument("--from-run", type=Path, help="a bench JSON whose measured costs to use")
    parser.add_argument("--markdown", action="store_true", help="print the table only")
    args = parser.parse_args(argv)
    costs, platform, workloads = load_inputs(args.inputs)
    run = json.loads(args.from_run.read_text()) if args.from_run else None
    if run is not None:
        costs = costs_from_run(scenario_data(run), costs)
    plans = [plan(workload_load(n, s, platform), costs, platform) for n, s in workloads.items()]
    if not args.markdown:
        for p in plans:
            print(f"{p.load.name}: {p.load.description}")
            print("  walls: " + ", ".join(f"{name} {share:.0%}" for name, share in p.walls))
        print()
    print(plans_markdown(plans))
    if run is not None:
        cores = int(run["machine"]["cpu_count"])
        predicted = predict_bench(costs, platform, cores, other_jobs(scenario_data(run)))
        print(f"\nthis machine ({cores} CPUs), predicted vs measured:")
        for name, value in measured_bench(scenario_data(run)).items():
            verdict = "ok" if within(predicted[name], value) else "off by more than 25 %"
            print(f"  {name}: {predicted[name]:.1f} vs {value:.1f} ({verdict})")


if __name__ == "__main__":
    main()
