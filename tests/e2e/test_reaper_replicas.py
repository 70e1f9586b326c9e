"""Three reaper replicas and a real scheduler: every hold expires once, promptly.

`make test` runs a small load (600 holds over 10 s). `make bench-reaper` runs the issue's
acceptance load (5,000 holds over a minute) with the same test:
BOXOFFICE_TEST_HOLDS, BOXOFFICE_TEST_WINDOW_SECONDS and BOXOFFICE_TEST_P99_SECONDS set it.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import pytest
from boxoffice_booking.auth import create_api_key, hash_key
from boxoffice_db.engine import session_scope
from boxoffice_db.models import ApiKey, Booking
from boxoffice_devstack.servers import free_port
from boxoffice_messaging.celery_app import create_celery_app
from boxoffice_messaging.routes import QUEUE_REAPER, TASK_PURGE_EXPIRED_KEYS
from boxoffice_settings import get_settings
from sqlalchemy import func, select, update

from tests.support.expiry_load import (
    count_pending,
    create_expiring_holds,
    discard_unsent_events,
    expiry_report,
    utcnow,
)
from tests.support.processes import ServiceProcess, wait_until
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

HOLDS = int(os.environ.get("BOXOFFICE_TEST_HOLDS", "600"))
WINDOW = float(os.environ.get("BOXOFFICE_TEST_WINDOW_SECONDS", "10"))
# The acceptance target is 1.5 s; `make test` allows double on a shared 2-core machine.
P99_LIMIT = float(os.environ.get("BOXOFFICE_TEST_P99_SECONDS", "3.0"))
REPLICAS = 3


def expired_total(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    match = re.search(r"^boxoffice_holds_expired_total ([0-9.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def expired_since(started_at: datetime) -> int:
    """Bookings the database shows expired since `started_at`, whoever's they are."""
    with session_scope() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(Booking).where(Booking.expired_at >= started_at)
            )
            or 0
        )


@dataclass(frozen=True)
class Reapers:
    processes: dict[int, ServiceProcess]  # by metrics port
    # Every expiry since is theirs (no other reaper runs meanwhile), and counted by them.
    started_at: datetime


@pytest.fixture(scope="module")
def reapers(stack: Stack) -> Iterator[Reapers]:
    logs = stack.var / "reaper-logs"
    started_at = utcnow()
    processes: dict[int, ServiceProcess] = {}
    for i in range(REPLICAS):
        port = free_port()
        processes[port] = ServiceProcess(
            f"reaper-{i}",
            "boxoffice_reaper.main",
            stack.env(BOXOFFICE_METRICS_PORT=str(port)),
            logs,
        ).start()
    scheduler = ServiceProcess(
        "scheduler",
        "boxoffice_scheduler.main",
        stack.env(
            BOXOFFICE_REAPER_SWEEP_INTERVAL_SECONDS="1",
            BOXOFFICE_SCHEDULER_LEADER_ELECTION="redis",
            BOXOFFICE_SCHEDULE_SHOWTIME_REMINDERS="off",
            BOXOFFICE_SCHEDULE_DAILY_REPORT="off",
        ),
        logs,
    ).start()
    try:
        for process in processes.values():
            # Generous: on a shared 2-core machine three workers can take minutes to import.
            process.wait_for_log("ready.", 240)
        yield Reapers(processes, started_at)
    finally:
        scheduler.stop()
        for process in processes.values():
            process.stop()


def test_replicas_expire_every_hold_exactly_once_and_promptly(reapers: Reapers) -> None:
    # Holds are inserted before the first one is due, so the clock starts fair.
    lead_time = 5 + HOLDS / 200
    started = time.monotonic()
    first_expiry = utcnow() + timedelta(seconds=lead_time)
    ids = create_expiring_holds(HOLDS, timedelta(seconds=WINDOW), first_expiry)
    try:
        check_every_hold_expired_once(reapers, ids, started, lead_time)
    finally:
        discard_unsent_events(ids)


def check_every_hold_expired_once(
    reapers: Reapers,
    ids: list[uuid.UUID],
    started: float,
    lead_time: float,
) -> None:
    assert time.monotonic() - started < lead_time, "inserting the holds took too long"

    wait_until(
        lambda: count_pending(ids) == 0, lead_time + WINDOW + 60, "every hold to expire", 0.5
    )
    report = expiry_report(ids)
    print(f"\nreaper replicas={REPLICAS}: {report}")
    assert report.expired == HOLDS
    assert report.events_per_booking == {1: HOLDS}, "a hold was expired twice, or silently"

    # The counters agree with the database: every committed expiry counted once, nothing
    # that rolled back. Earlier tests' holds falling due meanwhile are expired and counted
    # too, so the truth is every expiry since these reapers started; a batch is counted
    # just after its commit, hence the short wait.
    def metrics_match_database() -> bool:
        per_replica = {
            process.name: expired_total(port) for port, process in reapers.processes.items()
        }
        in_database = expired_since(reapers.started_at)
        print(f"expired per replica (metrics): {per_replica}; in the database: {in_database}")
        return sum(per_replica.values()) == in_database

    wait_until(metrics_match_database, 15, "the expiry counters to match the database", 0.5)
    assert report.lag_p99 < P99_LIMIT, str(report)
    for process in reapers.processes.values():
        process.assert_running()


def test_expired_keys_task_runs_on_a_reaper_replica(reapers: Reapers, stack: Stack) -> None:
    with session_scope() as session:
        key = create_api_key(session, "to-forget", ["bookings:read"])
        session.execute(
            update(ApiKey)
            .where(ApiKey.key_hash == hash_key(key))
            .values(revoked_at=func.now() - timedelta(days=365))
        )
    app = create_celery_app("test-producer", get_settings())
    app.send_task(TASK_PURGE_EXPIRED_KEYS, queue=QUEUE_REAPER)

    def key_gone() -> bool:
        with session_scope() as session:
            return session.scalar(select(ApiKey.id).where(ApiKey.key_hash == hash_key(key))) is None

    wait_until(key_gone, 30, "the reaper to delete the long-revoked key")
