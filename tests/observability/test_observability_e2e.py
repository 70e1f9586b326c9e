"""Every process for real, scraped by a real Prometheus configured from the rendered chart.

The scrape configuration is what the Prometheus Operator writes for the chart's ServiceMonitor
and PodMonitor (tests/observability/operator.py): each process stands for its component's pod,
so `job`, `namespace`, `component` and the other target labels come from the chart, not from
names written here. While bookings flow, every dashboard panel query, every rule expression and
the celery-mixin's alerts and panels (tests/observability/mixin.py) are evaluated through
Prometheus's HTTP API. Then one process of each component is killed in turn: the target-down
alert fires for exactly that component. The same run writes its spans to a file: one booking's
trace covers the API request, the outbox relay, the worker task and the SMTP send. The reaper
runs a prefork pool, so its task counters only add up if the children's samples are aggregated.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from boxoffice_bookings.seat_repository import HOLD_SQL
from boxoffice_devstack.servers import free_port
from boxoffice_messaging.queues import QUEUES, purge_queue
from boxoffice_messaging.redis_client import redis_client
from boxoffice_telemetry.queues import queue_lengths
from celery import Celery
from prometheus_client.mmap_dict import MmapedDict

from tests.helm.chart import NAMESPACE
from tests.observability import mixin
from tests.observability.chart_targets import COMPONENTS, rendered_objects
from tests.observability.operator import pods, scrape_configs
from tests.support.catalog import make_showtime
from tests.support.processes import ServiceProcess, wait_for_http, wait_until
from tests.support.prometheus import PrometheusServer, firing
from tests.support.smtp import SmtpServer
from tests.support.stack import API_KEY, Stack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
FILES = ROOT / "deploy/helm/boxoffice/files"
RULES = FILES / "prometheus/rules.yaml"
DASHBOARDS = sorted((FILES / "dashboards").glob("*.json"))
HOLD_TTL_SECONDS = 2
RATE_INTERVAL = "1m"
# Grafana's variables as an SRE picks them for this release (no cluster label: All).
VARIABLES = {"$__rate_interval": RATE_INTERVAL, "$cluster": ".*", "$namespace": NAMESPACE}
# The processes standing for each component's pod: module, arguments.
LAYOUT: dict[str, tuple[str, tuple[str, ...]]] = {
    "booking": ("boxoffice_booking.main", ()),
    "relay": ("boxoffice_booking.relay", ()),
    "notifier-email": ("boxoffice_notifier.main", ("email",)),
    "notifier-sms": ("boxoffice_notifier.main", ("sms",)),
    # prefork: the reaper's task counters are written by its children
    "reaper": ("boxoffice_reaper.main", ("--pool=prefork", "--concurrency=2")),
    "scheduler": ("boxoffice_scheduler.main", ()),
}
WORKERS = {"notifier-email", "notifier-sms", "reaper"}
# Messages left waiting on a queue nobody consumes while its worker is down.
BACKLOG = 25

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
        "Components up",
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
        "Workers and processes by queue",
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
    redis_url: str
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
    smtp = SmtpServer(smtputf8=True).start()  # as most providers: non-ASCII mailboxes go out
    api_port = free_port()
    traces_file = stack.var / f"traces-{uuid.uuid4().hex[:6]}.jsonl"
    base_env = stack.system_env(
        api_port,
        smtp.port,
        BOXOFFICE_HOLD_TTL_SECONDS=str(HOLD_TTL_SECONDS),
        BOXOFFICE_REAPER_SWEEP_INTERVAL_SECONDS="0.25",
        BOXOFFICE_TRACES_FILE=str(traces_file),
    )
    base_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    metrics_urls: dict[str, str] = {}
    listening: dict[str, dict[str, str]] = {}
    processes: dict[str, ServiceProcess] = {}
    logs = stack.var / "observability-logs"
    # The broker is shared with the modules before: what their processes published and nobody
    # consumed would be received here without having been sent by any process scraped here.
    broker = redis_client(stack.redis_url)
    for queue in QUEUES:
        purge_queue(broker, queue)
    broker.close()
    for component, (module, args) in LAYOUT.items():
        env = dict(base_env)
        port = free_port()
        env["BOXOFFICE_METRICS_PORT"] = str(port)
        metrics_urls[component] = f"127.0.0.1:{port}"
        listening[component] = {"metrics": metrics_urls[component]}
        processes[component] = ServiceProcess(component, module, env, logs, args).start()
    # Where the ServiceMonitor scrapes the API (its `metrics` port; `http` before issue 15).
    listening["booking"]["http"] = f"127.0.0.1:{api_port}"
    if "http" in [e["port"] for e in service_monitor_endpoints()]:
        metrics_urls["booking"] = listening["booking"]["http"]
    objects = rendered_objects(interval="1s")
    prometheus = PrometheusServer(
        stack.var / f"prometheus-{uuid.uuid4().hex[:6]}",
        scrape_configs(objects, pods(objects, listening)),
        [quick_rules(stack.var)],
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
        for worker in WORKERS:
            processes[worker].wait_for_log("ready.", timeout=180)
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
        yield Observed(
            api,
            prometheus,
            processes,
            metrics_urls,
            stack.redis_url,
            traces_file,
            confirmed,
            emails,
        )
    finally:
        api.close()
        prometheus.stop()
        for process in processes.values():
            process.stop()
        smtp.stop()


def service_monitor_endpoints() -> list[dict[str, Any]]:
    return [
        e
        for doc in rendered_objects()
        if doc["kind"] == "ServiceMonitor"
        for e in doc["spec"]["endpoints"]
    ]


def quick_rules(directory: Path) -> Path:
    """The shipped rules with every `for:` cut to 1s, so a kill is seen in seconds."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    for rule in (r for g in groups for r in g["rules"] if "for" in r):
        rule["for"] = "1s"
    path = directory / f"rules-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    return path


def fill(expr: str) -> str:
    for variable, value in VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, PromQL with Grafana's variables filled in) for every panel."""
    found = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                found.append((dashboard["uid"], panel["title"], fill(target["expr"])))
    return found


def rule_expressions() -> list[tuple[str, str]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [(r.get("alert") or r["record"], r["expr"]) for g in groups for r in g["rules"]]


def test_every_component_is_scraped_with_the_chart_labels(observed: Observed) -> None:
    """One target per component, job="boxoffice", labels as the operator derives them."""

    def labels() -> list[dict[str, str]]:
        return [t["labels"] for t in observed.prometheus.targets() if t["health"] == "up"]

    wait_until(lambda: len(labels()) == len(COMPONENTS), 30, "every target up")
    found = {t["component"]: t for t in labels()}
    assert set(found) == set(COMPONENTS)
    for component, target in found.items():
        assert target["job"] == "boxoffice", target
        assert target["namespace"] == NAMESPACE, target
        assert target["pod"].startswith(f"shop-boxoffice-{component}-"), target
    assert found["booking"]["service"] == "shop-boxoffice-booking"
    assert found["reaper"]["endpoint"] == "metrics"


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
    # Healthy system: nothing is down, nobody lacks a leader, the budget is safe.
    alerts = observed.prometheus.api("alerts")["data"]["alerts"]
    fired = {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}
    assert not fired & {
        "BoxofficeApiErrorBudgetBurnFast",
        "BoxofficeCeleryWorkerDown",
        "BoxofficeNoSchedulerLeader",
        "BoxofficeSchedulerSplitBrain",
        "BoxofficeTargetDown",
        "BoxofficeComponentDown",
    }, fired


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

    sent = values('sum by (name) (celery_task_sent_total{job="boxoffice"})')
    received = values('sum by (name) (celery_task_received_total{job="boxoffice"})')
    succeeded = values('sum by (name) (celery_task_succeeded_total{job="boxoffice"})')
    confirmation = "notifier.send_booking_confirmation"
    assert sent[confirmation] >= 3
    assert received[confirmation] == sent[confirmation]
    assert succeeded[confirmation] == sent[confirmation]
    # celery-exporter's label sets: the worker's node name as hostname, the producer's on sent.
    by_host = observed.prometheus.query(
        f'sum by (hostname, component) (celery_task_succeeded_total{{name="{confirmation}"}})'
    )["data"]["result"]
    assert {(s["metric"]["component"], s["metric"]["hostname"].split("@")[0]) for s in by_host} == {
        ("notifier-email", "notifier-email")
    }
    senders = observed.prometheus.query("sum by (hostname) (celery_task_sent_total)")
    assert {s["metric"]["hostname"].split("@")[0] for s in senders["data"]["result"]} >= {
        "booking-relay",
        "scheduler",
    }
    for histogram in ("celery_task_runtime", "celery_task_queue_wait_time"):
        series = observed.prometheus.query(f"{histogram}_bucket")["data"]["result"]
        assert series, f"{histogram} missing"
        assert {s["metric"]["le"] for s in series} >= {"0.005", "10.0", "+Inf"}  # default buckets
        assert {"name", "hostname", "queue_name"} <= set(series[0]["metric"])
    # Exported once per queue (by the scheduler leader), not once per process.
    lengths = observed.prometheus.query("count by (queue_name) (celery_queue_length)")
    counts = {s["metric"]["queue_name"]: s["value"][1] for s in lengths["data"]["result"]}
    assert counts == {"notifier.email": "1", "notifier.sms": "1", "reaper": "1"}
    up = observed.prometheus.query("celery_worker_up")["data"]["result"]
    assert {s["metric"]["hostname"].split("@")[0] for s in up if s["value"][1] == "1"} == WORKERS
    assert {s["metric"]["component"] for s in up} == {"scheduler"}
    workers = observed.prometheus.query("celery_active_worker_count")["data"]["result"]
    assert {s["metric"]["queue_name"]: s["value"][1] for s in workers} == counts
    processes = observed.prometheus.query('celery_active_process_count{queue_name="reaper"}')
    assert processes["data"]["result"][0]["value"][1] == "2"  # --concurrency=2


def reaper_multiprocess_dir(observed: Observed) -> Path:
    """Where the reaper's processes (it re-executed itself with a private one) write samples."""
    pid = observed.processes["reaper"].process.pid  # type: ignore[union-attr]
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    multiproc = next(e for e in environ if e.startswith(b"PROMETHEUS_MULTIPROC_DIR="))
    return Path(multiproc.split(b"=", 1)[1].decode())


def test_every_component_froze_its_startup_heap(observed: Observed) -> None:
    """Each process, once ready, froze its startup heap out of Python's full collections
    (boxoffice_telemetry.heap); the reaper's parent and prefork children each did."""

    def frozen() -> dict[str, float]:
        answer = observed.prometheus.query("boxoffice_gc_frozen_objects")
        return {s["metric"]["component"]: float(s["value"][1]) for s in answer["data"]["result"]}

    wait_until(
        lambda: set(frozen()) == set(COMPONENTS) and min(frozen().values()) > 0,
        30,
        "every component's frozen heap scraped",
    )
    # Imports alone are tens of thousands of objects; a process that froze nothing reads 0.
    assert min(frozen().values()) > 20_000, frozen()
    # The reaper's /metrics shows the largest of its processes': each one's own is in its file.
    directory = reaper_multiprocess_dir(observed)
    by_process = {
        path.name.rsplit("_", 1)[1]: value
        for path in directory.glob("gauge_max_*.db")
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path))  # type: ignore[no-untyped-call]
        if json.loads(key)[0] == "boxoffice_gc_frozen_objects"
    }
    assert len(by_process) >= 3, f"the parent and two children should each freeze: {by_process}"
    assert min(by_process.values()) > 20_000, by_process


def test_prefork_children_are_aggregated(observed: Observed) -> None:
    """The reaper's sweeps run in its pool's children; its /metrics adds them all up."""
    text = httpx.get(f"http://{observed.metrics_urls['reaper']}/metrics").text

    def sample(name: str) -> float:
        pattern = (
            rf'^{name}{{hostname="reaper@[^"]+",name="reaper.expire_due_holds",'
            rf'queue_name="reaper"}} (\S+)$'
        )
        match = re.search(pattern, text, re.M)
        assert match, f"{name} missing from the reaper's /metrics"
        return float(match.group(1))

    received = sample("celery_task_received_total")  # counted in the parent process
    succeeded = sample("celery_task_succeeded_total")  # counted in the children
    assert succeeded >= 10
    # Each received sweep either succeeded or is still queued in a child / expired unrun.
    assert received - 4 <= succeeded <= received
    directory = reaper_multiprocess_dir(observed)
    writers = {p.name.rsplit("_", 1)[1] for p in directory.glob("counter_*.db")}
    assert len(writers) >= 3, f"parent and two children should write counters: {writers}"


def confirm_bookings(api: httpx.Client, count: int) -> None:
    """`count` paid bookings: each sends a confirmation through the relay and notifier."""
    showtime = make_showtime(rows=1, seats_per_row=count, blocked=())
    for n in range(1, count + 1):
        created = hold(api, showtime, [f"A{n}"], f"zoë-{uuid.uuid4().hex[:6]}@exämple.com")
        assert created.status_code == 201, created.text
        paid = api.post(
            f"/v1/bookings/{created.json()['id']}/payments",
            json={"provider": "test", "outcome": "succeeded"},
        )
        assert paid.status_code == 201, paid.text


def has_data(prometheus: PrometheusServer, expr: str, minutes: int = 3) -> bool:
    """Whether a Grafana time-series panel drawing `expr` over the last minutes shows anything."""
    now = time.time()
    answer = prometheus.api(
        "query_range", query=expr, start=str(now - 60 * minutes), end=str(now), step="1"
    )
    assert answer.get("status") == "success", (expr, answer)
    return bool(answer["data"]["result"])


def test_the_celery_mixin_pointed_at_the_release_shows_the_main_panels(observed: Observed) -> None:
    """Its published alerts and panel queries, selector set to the chart's job, work here.

    celery-exporter creates a counter series at its first increment, and so do we: a burst
    that lands before the first scrape shows no increase. Traffic after the series exist is
    what a release in service has, so a few more bookings run first.
    """
    panels = mixin.panel_exprs(NAMESPACE, "notifier.email")

    def empty_panels() -> list[tuple[str, str]]:
        return [
            (title, expr)
            for title, exprs in panels.items()
            for expr in exprs
            if not has_data(observed.prometheus, expr)
        ]

    # Each counter (sent in the relay, received and the rest in the notifier) needs traffic
    # after its series first appeared: keep a trickle of bookings going until every panel
    # has drawn something, or give up after a while and say which stayed empty.
    deadline = time.monotonic() + 120
    confirm_bookings(observed.api, 3)
    empty = empty_panels()
    while empty and time.monotonic() < deadline:
        confirm_bookings(observed.api, 1)
        time.sleep(3)
        empty = empty_panels()
    assert not empty, f"mixin panels without data: {empty}"
    for name, expr in mixin.alert_exprs().items():
        answer = observed.prometheus.query(expr)
        assert answer.get("status") == "success", (name, answer)
        assert answer["data"]["result"] == [], f"{name} fires on a healthy release"
    # The series the alerts watch exist (an alert on nothing would never fire).
    for watched in ("celery_worker_up", "celery_queue_length", "celery_task_succeeded_total"):
        series = observed.prometheus.query(f'{watched}{{{mixin.JOB_SELECTOR},name!~"None"}}')
        assert series["data"]["result"], watched


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
    # OpenTelemetry messaging conventions on both ends of the Celery message.
    [run] = [s for s in in_trace if s["name"] == "run notifier.send_booking_confirmation"]
    [publish] = [s for s in in_trace if s["name"] == "publish notifier.send_booking_confirmation"]
    assert run["attributes"]["messaging.operation.type"] == "process"
    assert publish["attributes"]["messaging.operation.type"] == "send"
    assert run["attributes"]["messaging.destination.name"] == "notifier.email"
    assert publish["attributes"]["messaging.destination.name"] == "notifier.email"
    assert (
        run["attributes"]["messaging.message.id"] == publish["attributes"]["messaging.message.id"]
    )
    assert run["attributes"]["messaging.message.id"]
    assert any(s["name"].startswith(("SELECT", "UPDATE", "INSERT")) for s in in_trace), names
    # The notifier claims and marks the delivery on kept cursors (boxoffice_db.kept), outside
    # SQLAlchemy's events: their own cursors make those spans, in the task's trace.
    delivery_sql = [
        s["attributes"]["db.statement"]
        for s in in_trace
        if s["resource"]["attributes"]["service.name"] == "boxoffice-notifier"
        and s["kind"] == "SpanKind.CLIENT"
        and "deliveries" in s["attributes"].get("db.statement", "")
    ]
    assert any("INSERT INTO deliveries" in sql for sql in delivery_sql), delivery_sql
    assert any(sql.startswith("UPDATE deliveries") for sql in delivery_sql), delivery_sql
    # Parent links hold the chain together: every span but the root has its parent in the trace.
    ids = {s["context"]["span_id"] for s in in_trace}
    orphans = [s["name"] for s in in_trace if s["parent_id"] and s["parent_id"] not in ids]
    assert not orphans, orphans


def test_the_hold_sql_on_the_asyncio_pool_is_in_the_request_trace(observed: Observed) -> None:
    """The hold runs on the psycopg asyncio pool (boxoffice_db.aio): its statement is a span."""
    everything = spans(observed.traces_file)
    holds = [
        s for s in everything if s["kind"] == "SpanKind.SERVER" and s["name"] == "POST /v1/bookings"
    ]
    assert holds, sorted({s["name"] for s in everything})[:40]
    traced = {s["context"]["trace_id"] for s in holds}
    statements = [
        s
        for s in everything
        if s["context"]["trace_id"] in traced and s["kind"] == "SpanKind.CLIENT"
    ]
    # The hold statement's own opening line, read from the code (not copied) so the test
    # follows the statement when it changes.
    opening = next(line for line in HOLD_SQL.splitlines() if line.strip())
    hold_sql = [s for s in statements if opening in s["attributes"].get("db.statement", "")]
    assert hold_sql, [s["name"] for s in statements]
    assert all(s["attributes"]["db.system"] == "postgresql" for s in hold_sql)
    assert all("%(" not in s["name"] for s in hold_sql)


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
        for line in observed.processes["notifier-email"].log().splitlines()
        if line.startswith("{")
    ]
    sent = [r for r in notifier if r.get("event") == "email sent"]
    assert sent
    assert all(r.get("trace_id") and r.get("span_id") for r in sent)
    assert all(r.get("task", "").startswith("notifier.") for r in sent)


def children_of(process: ServiceProcess) -> list[int]:
    assert process.process is not None
    tasks = Path(f"/proc/{process.process.pid}/task")
    return [int(pid) for task in tasks.iterdir() for pid in (task / "children").read_text().split()]


def restart(process: ServiceProcess, ready: str) -> None:
    """Start `process` again and wait for `ready` in the part of its log written since."""
    offset = len(process.log())
    process.start()
    wait_until(lambda: ready in process.log()[offset:], 180, f"{process.name} back: {ready!r}")


def down_components(prometheus: PrometheusServer, alertname: str) -> set[str]:
    return {labels["component"] for labels in firing(prometheus, alertname)}


def wait_for_alone(prometheus: PrometheusServer, alertname: str, component: str) -> None:
    """Until `alertname` fires for `component` and for no other component."""
    wait_until(
        lambda: down_components(prometheus, alertname) == {component},
        30,
        f"{alertname} for {component} alone",
        interval=0.5,
    )


def test_sum_of_queue_lengths_is_the_real_backlog(observed: Observed) -> None:
    """With the SMS worker gone, messages wait: Prometheus's sum is what Redis holds."""
    client = redis_client(observed.redis_url)
    sms = observed.processes["notifier-sms"]
    sms.stop()
    try:
        app = Celery("backlog", broker=observed.redis_url)
        for _ in range(BACKLOG):
            app.send_task("notifier.backlog_probe", queue="notifier.sms")

        def backlog_seen() -> bool:
            answer = observed.prometheus.query(
                'sum(celery_queue_length{queue_name="notifier.sms"})'
            )
            result = answer["data"]["result"]
            return bool(result) and float(result[0]["value"][1]) >= BACKLOG

        wait_until(backlog_seen, 30, "the backlog in Prometheus", interval=0.5)
        for _ in range(20):  # the reaper queue moves; compare within one quiet moment
            real = sum(queue_lengths(client, ["notifier.email", "notifier.sms", "reaper"]).values())
            seen = observed.prometheus.query('sum(celery_queue_length{job="boxoffice"})')
            if float(seen["data"]["result"][0]["value"][1]) == real:
                break
            threading.Event().wait(0.3)
        else:
            raise AssertionError(f"sum(celery_queue_length) never matched Redis ({real})")
        assert real >= BACKLOG
    finally:
        purge_queue(client, "notifier.sms")
        restart(sms, "ready.")


def test_killing_one_process_of_each_component_alerts_for_exactly_that_component(
    observed: Observed,
) -> None:
    """kill -9 each component's only process in turn: its target-down alert, nobody else's."""
    always_on = {"booking", "relay", "scheduler"}
    ready = {"relay": "outbox relay started", "scheduler": "beat: starting"}
    for component in COMPONENTS:
        process = observed.processes[component]
        orphans = children_of(process)
        process.kill()
        for pid in orphans:  # a prefork pool's children would outlive their parent
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_for_alone(observed.prometheus, "BoxofficeTargetDown", component)
        if component in always_on:
            wait_for_alone(observed.prometheus, "BoxofficeComponentDown", component)
        if component == "notifier-email":
            # The dead worker reads 0 in celery_worker_up (the leader's view) rather than vanishing.
            wait_until(
                lambda: (
                    [
                        a["hostname"]
                        for a in firing(observed.prometheus, "BoxofficeCeleryWorkerDown")
                    ]
                    == [f"notifier-email@{socket.gethostname()}"]
                ),
                60,
                "BoxofficeCeleryWorkerDown for the killed notifier",
                interval=0.5,
            )
        if component == "booking":
            process.start()
            wait_for_http(str(observed.api.base_url).rstrip("/") + "/readyz", timeout=180)
        else:
            restart(process, ready.get(component, "ready."))
        wait_until(
            lambda: not down_components(observed.prometheus, "BoxofficeTargetDown"),
            60,
            f"{component} scraped again",
            interval=0.5,
        )
