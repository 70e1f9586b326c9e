"""Every process for real, scraped by a real Prometheus while bookings flow.

Then every dashboard panel query and every rule expression is evaluated through Prometheus's
HTTP API: each parses and evaluates, and the key ones return data. The same run writes its
spans to a file: one booking's trace covers the API request, the outbox relay, the worker task
and the SMTP send. The reaper runs a prefork pool, so its task counters only add up if the
children's samples are aggregated.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from boxoffice_devstack.servers import free_port

from tests.support.catalog import make_showtime
from tests.support.processes import ServiceProcess, wait_for_http, wait_until
from tests.support.prometheus import PrometheusServer
from tests.support.smtp import SmtpServer
from tests.support.stack import API_KEY, Stack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
FILES = ROOT / "deploy/helm/boxoffice/files"
RULES = FILES / "prometheus/rules.yaml"
DASHBOARDS = sorted((FILES / "dashboards").glob("*.json"))
HOLD_TTL_SECONDS = 2
RATE_INTERVAL = "1m"

# Panels that must show data after a few bookings (the rest may legitimately be empty, e.g.
# failures, dead letters, or metrics other components export).
KEY_PANELS = {
    "boxoffice-platform": {
        "Requests / s by handler",
        "5xx error ratio",
        "Latency (all handlers)",
        "p99 latency by handler",
        "Workers up",
        "Queue depth",
        "Tasks succeeded / s by task",
        "Task run time p95 by task",
        "Queue wait p95 by queue",
        "Scrape targets up",
    },
    "boxoffice-bookings": {
        "Holds / s",
        "Conflict ratio",
        "Confirmations (24h)",
        "Expiry lag p99",
        "Hold attempts / s by result",
        "Confirmations, cancellations, expiries / s",
        "Revenue captured per hour (minor units) by currency",
        "Expiry lag (expires_at → EXPIRED)",
    },
    "boxoffice-messaging": {
        "Task flow / s",
        "Succeeded / s by task",
        "Run time p50 / p95 / p99 by task",
        "Queue wait p95 by queue",
        "Queue depth",
        "Workers up",
        "Dead letters by service",
        "Scheduler leader",
    },
}


@dataclass
class Observed:
    api: httpx.Client
    prometheus: PrometheusServer
    processes: dict[str, ServiceProcess]
    metrics_urls: dict[str, str]
    traces_file: Path
    confirmed_booking: str
    emails: list[str]


def hold(api: httpx.Client, showtime: uuid.UUID, seats: list[str], email: str) -> httpx.Response:
    return api.post(
        "/v1/bookings",
        json={
            "showtime_id": str(showtime),
            "seats": seats,
            "customer": {"email": email, "phone": "+919800000001"},
        },
    )


def run_bookings(api: httpx.Client, smtp: SmtpServer) -> tuple[str, list[str]]:
    """Holds, conflicts, rejects, payments, cancellations and expiries; the first paid id."""
    showtime = make_showtime(rows=4, seats_per_row=10)
    emails: list[str] = []
    paid: list[str] = []
    for i, row in enumerate("BCD"):
        for n in (1, 3, 5):
            email = f"obs-{uuid.uuid4().hex[:8]}@example.com"
            emails.append(email)
            created = hold(api, showtime, [f"{row}{n}", f"{row}{n + 1}"], email)
            assert created.status_code == 201, created.text
            booking = created.json()["id"]
            if n == 1:
                paid_response = api.post(
                    f"/v1/bookings/{booking}/payments",
                    json={"provider": "test", "outcome": "succeeded"},
                )
                assert paid_response.status_code == 201, paid_response.text
                paid.append(booking)
            elif n == 3 and i == 0:
                assert api.post(f"/v1/bookings/{booking}/cancel").status_code == 200
            # the rest expire
        conflict = hold(api, showtime, [f"{row}1"], "late@example.com")
        assert conflict.status_code == 409
        assert hold(api, showtime, ["Z99"], "typo@example.com").status_code == 422
        api.get(f"/v1/showtimes/{showtime}/seats")
        api.get(f"/v1/bookings/{uuid.uuid4()}")  # a 404
    wait_until(lambda: len(smtp.messages()) >= len(paid) + 1, 60, "confirmation emails")
    return paid[0], emails


@pytest.fixture(scope="module")
def observed(stack: Stack) -> Iterator[Observed]:
    smtp = SmtpServer().start()
    api_port = free_port()
    traces_file = stack.var / f"traces-{uuid.uuid4().hex[:6]}.jsonl"
    base_env = stack.env(
        BOXOFFICE_API_PORT=str(api_port),
        BOXOFFICE_HOLD_TTL_SECONDS=str(HOLD_TTL_SECONDS),
        BOXOFFICE_REAPER_SWEEP_INTERVAL_SECONDS="0.25",
        BOXOFFICE_SMTP_HOST="127.0.0.1",
        BOXOFFICE_SMTP_PORT=str(smtp.port),
        BOXOFFICE_SCHEDULER_STATE_DIR=str(stack.var / "scheduler-obs"),
        BOXOFFICE_TRACES_FILE=str(traces_file),
    )
    base_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    layout: dict[str, tuple[str, tuple[str, ...]]] = {
        "booking": ("boxoffice_booking.main", ()),
        "relay": ("boxoffice_booking.relay", ()),
        "notifier": ("boxoffice_notifier.main", ()),
        # prefork: the reaper's task counters are written by its children
        "reaper": ("boxoffice_reaper.main", ("--pool=prefork", "--concurrency=2")),
        "scheduler": ("boxoffice_scheduler.main", ()),
    }
    metrics_urls: dict[str, str] = {"booking": f"127.0.0.1:{api_port}"}
    processes: dict[str, ServiceProcess] = {}
    logs = stack.var / "observability-logs"
    for name, (module, args) in layout.items():
        env = dict(base_env)
        if name != "booking":
            port = free_port()
            env["BOXOFFICE_METRICS_PORT"] = str(port)
            metrics_urls[name] = f"127.0.0.1:{port}"
        processes[name] = ServiceProcess(name, module, env, logs, args).start()
    prometheus = PrometheusServer(
        stack.var / f"prometheus-{uuid.uuid4().hex[:6]}",
        {f"boxoffice-{name}": target for name, target in metrics_urls.items()},
        [RULES],
    )
    api = httpx.Client(
        base_url=f"http://127.0.0.1:{api_port}",
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=10,
    )
    try:
        prometheus.start()
        # Generous: on a shared 2-core machine five interpreters start slowly.
        wait_for_http(f"http://127.0.0.1:{api_port}/readyz", timeout=180)
        processes["notifier"].wait_for_log("ready.", timeout=180)
        processes["reaper"].wait_for_log("ready.", timeout=180)
        confirmed, emails = run_bookings(api, smtp)
        # Expiries, their emails, and a few scrapes after the last of them.
        threading.Event().wait(HOLD_TTL_SECONDS + 2)
        wait_until(
            lambda: prometheus.query("sum(boxoffice_holds_expired_total)")["data"]["result"],
            30,
            "Prometheus to see the expiries",
            interval=0.5,
        )
        threading.Event().wait(3)
        yield Observed(api, prometheus, processes, metrics_urls, traces_file, confirmed, emails)
    finally:
        api.close()
        prometheus.stop()
        for process in processes.values():
            process.stop()
        smtp.stop()


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, PromQL with Grafana's variables filled in) for every panel."""
    found = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"].replace("$__rate_interval", RATE_INTERVAL)
                found.append((dashboard["uid"], panel["title"], expr))
    return found


def rule_expressions() -> list[tuple[str, str]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [(r.get("alert") or r["record"], r["expr"]) for g in groups for r in g["rules"]]


def test_every_process_is_scraped(observed: Observed) -> None:
    wait_until(
        lambda: all(observed.prometheus.targets_up().values()),
        20,
        "every target up",
    )
    assert set(observed.prometheus.targets_up()) == {
        f"boxoffice-{name}" for name in observed.metrics_urls
    }


def test_every_dashboard_query_evaluates_and_key_panels_have_data(observed: Observed) -> None:
    queries = panel_queries()
    assert len(queries) > 40
    assert not [q for q in queries if "$" in q[2]], "unresolved dashboard variables"
    failures = []
    with_data: set[tuple[str, str]] = set()
    for uid, title, expr in queries:
        answer = observed.prometheus.query(expr)
        if answer.get("status") != "success":
            failures.append((uid, title, expr, answer.get("error")))
        elif answer["data"]["result"]:
            with_data.add((uid, title))
    assert not failures, failures
    empty = {(uid, t) for uid, ts in KEY_PANELS.items() for t in ts} - with_data
    assert not empty, f"key panels without data: {sorted(empty)}"
    titles = {(uid, title) for uid, title, _ in queries}
    missing = {(uid, t) for uid, ts in KEY_PANELS.items() for t in ts} - titles
    assert not missing, f"key panels not on any dashboard: {missing}"


def test_every_rule_expression_evaluates_and_prometheus_loaded_them_healthy(
    observed: Observed,
) -> None:
    rules = rule_expressions()
    failures = []
    for name, expr in rules:
        answer = observed.prometheus.query(expr)
        if answer.get("status") != "success":
            failures.append((name, answer.get("error")))
    assert not failures, failures
    loaded = observed.prometheus.api("rules")["data"]["groups"]
    health = {r["name"]: (r["health"], r.get("lastError", "")) for g in loaded for r in g["rules"]}
    assert set(health) == {name for name, _ in rules}
    assert all(state == "ok" for state, _ in health.values()), health
    # Healthy system: no page-worthy alert except the ones whose metrics are not exported yet.
    alerts = observed.prometheus.api("alerts")["data"]["alerts"]
    firing = {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}
    assert not firing & {
        "BoxofficeApiErrorBudgetBurnFast",
        "CeleryWorkerDown",
        "BoxofficeNoSchedulerLeader",
        "BoxofficeTargetDown",
    }, firing


def test_api_metrics_label_routes_by_template_and_status_class(observed: Observed) -> None:
    result = observed.prometheus.query("sum by (handler, method, status) (http_requests_total)")
    series = {
        (s["metric"]["handler"], s["metric"]["method"], s["metric"]["status"])
        for s in result["data"]["result"]
    }
    assert ("/v1/bookings", "POST", "2xx") in series
    assert ("/v1/bookings", "POST", "4xx") in series
    assert ("/v1/bookings/{booking_id}/payments", "POST", "2xx") in series
    assert ("/v1/bookings/{booking_id}", "GET", "4xx") in series
    assert not [h for h, _, _ in series if re.search(r"[0-9a-f]{8}-[0-9a-f]{4}", h)]


def test_celery_metrics_use_celery_exporter_names_and_labels(observed: Observed) -> None:
    def values(expr: str) -> dict[str, float]:
        result = observed.prometheus.query(expr)["data"]["result"]
        return {s["metric"].get("name", ""): float(s["value"][1]) for s in result}

    sent = values("sum by (name) (celery_task_sent_total)")
    received = values("sum by (name) (celery_task_received_total)")
    succeeded = values("sum by (name) (celery_task_succeeded_total)")
    confirmation = "notifier.send_booking_confirmation"
    assert sent[confirmation] >= 3
    assert received[confirmation] == sent[confirmation]
    assert succeeded[confirmation] == sent[confirmation]
    lengths = observed.prometheus.query("max by (queue_name) (celery_queue_length)")
    queues = {s["metric"]["queue_name"] for s in lengths["data"]["result"]}
    assert {"notifier.email", "notifier.sms", "reaper"} <= queues
    up = observed.prometheus.query("celery_worker_up")["data"]["result"]
    assert {s["metric"]["job"] for s in up if s["value"][1] == "1"} == {
        "boxoffice-notifier",
        "boxoffice-reaper",
    }
    wait = observed.prometheus.query("sum by (queue_name) (celery_task_queue_wait_seconds_count)")
    assert {s["metric"]["queue_name"] for s in wait["data"]["result"]} >= {
        "notifier.email",
        "reaper",
    }


def test_prefork_children_are_aggregated(observed: Observed) -> None:
    """The reaper's sweeps run in its pool's children; its /metrics adds them all up."""
    text = httpx.get(f"http://{observed.metrics_urls['reaper']}/metrics").text

    def sample(name: str) -> float:
        pattern = rf'^{name}{{name="reaper.expire_due_holds",queue_name="reaper"}} (\S+)$'
        match = re.search(pattern, text, re.M)
        assert match, f"{name} missing from the reaper's /metrics"
        return float(match.group(1))

    received = sample("celery_task_received_total")  # counted in the parent process
    succeeded = sample("celery_task_succeeded_total")  # counted in the children
    assert succeeded >= 10
    # Each received sweep either succeeded or is still queued in a child / expired unrun.
    assert received - 4 <= succeeded <= received
    pid = observed.processes["reaper"].process.pid  # type: ignore[union-attr]
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    multiproc = next(e for e in environ if e.startswith(b"PROMETHEUS_MULTIPROC_DIR="))
    directory = Path(multiproc.split(b"=", 1)[1].decode())
    writers = {p.name.rsplit("_", 1)[1] for p in directory.glob("counter_*.db")}
    assert len(writers) >= 3, f"parent and two children should write counters: {writers}"


def spans(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_one_trace_covers_http_outbox_relay_worker_and_smtp(observed: Observed) -> None:
    booking = observed.confirmed_booking
    everything = spans(observed.traces_file)
    payment = [
        s
        for s in everything
        if s["kind"] == "SpanKind.SERVER"
        and "payments" in s["name"]
        and any(booking in str(v) for v in s["attributes"].values())
    ]
    assert len(payment) == 1, [s["name"] for s in everything][:50]
    trace_id = payment[0]["context"]["trace_id"]
    in_trace = [s for s in everything if s["context"]["trace_id"] == trace_id]
    services = {s["resource"]["attributes"]["service.name"] for s in in_trace}
    names = {s["name"] for s in in_trace}
    assert {"boxoffice-booking-api", "boxoffice-booking-relay", "boxoffice-notifier"} <= services
    assert "outbox publish booking.confirmed" in names
    assert "publish notifier.send_booking_confirmation" in names
    assert "run notifier.send_booking_confirmation" in names
    assert "smtp send" in names
    assert any(s["name"].startswith(("SELECT", "UPDATE", "INSERT")) for s in in_trace), names
    # Parent links hold the chain together: every span but the root has its parent in the trace.
    ids = {s["context"]["span_id"] for s in in_trace}
    orphans = [s["name"] for s in in_trace if s["parent_id"] and s["parent_id"] not in ids]
    assert not orphans, orphans


def test_logs_are_json_with_trace_ids_and_no_personal_data(observed: Observed) -> None:
    for name, process in observed.processes.items():
        lines = [line for line in process.log().splitlines() if line.startswith("{")]
        assert lines, f"{name} wrote no JSON log lines"
        records = [json.loads(line) for line in lines]
        assert all(r.get("service") for r in records), name
        for email in observed.emails:
            assert email not in process.log(), f"{name} logged a customer's email address"
        assert "+919800000001" not in process.log(), f"{name} logged a phone number"
    notifier = [
        json.loads(line)
        for line in observed.processes["notifier"].log().splitlines()
        if line.startswith("{")
    ]
    sent = [r for r in notifier if r.get("event") == "email sent"]
    assert sent
    assert all(r.get("trace_id") and r.get("span_id") for r in sent)
    assert all(r.get("task", "").startswith("notifier.") for r in sent)
