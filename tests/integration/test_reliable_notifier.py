"""The real notifier worker with the messaging machinery: retries, dead letters, task status,
warm shutdown, and the operators' API and CLI over them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from boxoffice.booking.v1 import events_pb2
from boxoffice_bookings import payments
from boxoffice_contracts.envelope import build_envelope, to_json
from boxoffice_db.engine import session_scope
from boxoffice_db.models import DeadLetter, Delivery, OutboxEvent, TaskRecord, TaskStatus
from boxoffice_devstack.servers import free_port
from boxoffice_messaging.celery_app import create_celery_app
from boxoffice_messaging.outbox import task_id_for
from boxoffice_messaging.queues import priority_keys
from boxoffice_messaging.redis_client import redis_client
from boxoffice_messaging.routes import EVENT_ROUTES, QUEUE_EMAIL, TASK_SEND_BOOKING_CONFIRMATION
from boxoffice_settings import get_settings
from celery import Celery
from sqlalchemy import select

from tests.support.catalog import hold, make_showtime
from tests.support.processes import ServiceProcess, wait_for_http, wait_until
from tests.support.smtp import RecordingHandler, SmtpServer
from tests.support.stack import API_KEY, Stack

pytestmark = pytest.mark.integration


class SlowHandler(RecordingHandler):
    """Records messages, after an adjustable pause (to catch a worker mid-send)."""

    delay = 0.0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


class ControllableSmtp(SmtpServer):
    def __init__(self) -> None:
        super().__init__()
        self.slow = SlowHandler()
        self.handler = self.slow
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.running = False

    def start(self) -> ControllableSmtp:
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        self.running = True
        return self

    def stop(self) -> None:
        if self.running:
            self.controller.stop()
            self.running = False

    def for_booking(self, reference: str) -> list[Message]:
        return [m for m in self.messages() if m["X-Boxoffice-Booking"] == reference]


@dataclass
class Worker:
    smtp: ControllableSmtp
    notifier: ServiceProcess
    relay: ServiceProcess
    api_url: str
    showtime_id: uuid.UUID
    celery: Celery
    seats: Iterator[str]


@pytest.fixture(scope="module")
def worker(stack: Stack) -> Iterator[Worker]:
    smtp = ControllableSmtp().start()
    port = free_port()
    env = stack.system_env(
        port,
        smtp.port,
        BOXOFFICE_SMTP_TIMEOUT_SECONDS="3",
        # Fast, short retries so the outage tests take seconds: 5 attempts over ~3-5 s.
        BOXOFFICE_NOTIFIER_MAX_RETRIES="4",
        BOXOFFICE_NOTIFIER_RETRY_BACKOFF_SECONDS="0.5",
        BOXOFFICE_NOTIFIER_RETRY_BACKOFF_MAX_SECONDS="2",
        BOXOFFICE_CELERY_VISIBILITY_TIMEOUT_SECONDS="30",
    )
    logs = stack.var / "reliable-notifier-logs"
    notifier = ServiceProcess("notifier", "boxoffice_notifier.main", env, logs).start()
    relay = ServiceProcess("relay", "boxoffice_booking.relay", env, logs).start()
    api = ServiceProcess("api", "boxoffice_booking.main", env, logs).start()
    api_url = f"http://127.0.0.1:{port}"
    try:
        notifier.wait_for_log("ready.")
        wait_for_http(api_url + "/readyz")
        labels = (f"{row}{n}" for row in "ABCDEFGH" for n in range(1, 11))
        yield Worker(
            smtp,
            notifier,
            relay,
            api_url,
            make_showtime(rows=8, seats_per_row=10, blocked=()),
            create_celery_app("test-producer", get_settings()),
            labels,
        )
    finally:
        notifier.stop()
        relay.stop()
        api.stop()
        smtp.stop()


def confirm_booking(worker: Worker) -> tuple[str, str]:
    """Hold a seat and pay for it; returns (reference, the confirmation's task id)."""
    booking = hold(worker.showtime_id, [next(worker.seats)], "ops@example.com")
    with session_scope() as session:
        payments.start_payment(session, booking.id, "test", "succeeded")
        reference, booking_id = booking.reference, booking.id
    with session_scope() as session:
        event_id = session.scalars(
            select(OutboxEvent.event_id).where(
                OutboxEvent.aggregate_id == booking_id,
                OutboxEvent.event_type == "booking.confirmed",
            )
        ).one()
    return reference, task_id_for(event_id, EVENT_ROUTES["booking.confirmed"][0])


def task_row(task_id: str) -> TaskRecord | None:
    with session_scope() as session:
        return session.get(TaskRecord, task_id)


def dead_letter(task_id: str) -> DeadLetter | None:
    with session_scope() as session:
        return session.scalars(select(DeadLetter).where(DeadLetter.task_id == task_id)).first()


POISON = [
    "not an envelope",
    {"event_id": "not-a-uuid", "event_type": "booking.confirmed"},
    {"event_id": str(uuid.uuid4()), "event_type": "seat.teleported", "aggregate_id": "x"},
]


def test_poisoned_messages_are_dead_lettered_and_the_worker_keeps_consuming(
    worker: Worker,
) -> None:
    task_ids = [
        worker.celery.send_task(TASK_SEND_BOOKING_CONFIRMATION, args=[poison], queue=QUEUE_EMAIL).id
        for poison in POISON
    ]
    reference, _ = confirm_booking(worker)

    wait_until(lambda: all(dead_letter(t) for t in task_ids), 60, "three dead letters")
    letters = [dead_letter(t) for t in task_ids]
    for letter, poison in zip(letters, POISON, strict=False):
        assert letter is not None
        assert letter.service == "notifier"
        assert letter.queue == QUEUE_EMAIL
        assert letter.attempts == 1, "a malformed message is not retried"
        assert letter.error_type == "MalformedMessage"
        assert letter.reason.startswith("permanent error: MalformedMessage")
        assert letter.message == {"args": [poison], "kwargs": {}}
    assert "unknown event_type 'seat.teleported'" in letters[2].reason  # type: ignore[union-attr]
    # The worker went on: the real booking after the poison got its email.
    wait_until(lambda: len(worker.smtp.for_booking(reference)) == 1, 30, "the confirmation")
    # Status rows are written behind the tasks (status_writer: up to its linger later).
    wait_until(
        lambda: all(
            (row := task_row(task_id)) is not None and row.status is TaskStatus.FAILURE
            for task_id in task_ids
        ),
        10,
        "the three tasks recorded as failed",
    )
    worker.notifier.assert_running()


def test_an_event_about_a_booking_that_does_not_exist_is_dead_lettered(worker: Worker) -> None:
    """The booking's details come with the delivery's claim (one statement): a well-formed
    event naming no booking finds none there, and is dead-lettered as malformed, not retried,
    with its delivery recorded as failed."""
    booking = uuid.uuid4()
    envelope = build_envelope(
        "booking.confirmed",
        booking,
        events_pb2.BookingConfirmed(
            booking_id=str(booking), seats=["Ø1"], total_minor=100, currency="EUR"
        ),
    )
    task_id = worker.celery.send_task(
        TASK_SEND_BOOKING_CONFIRMATION, args=[to_json(envelope)], queue=QUEUE_EMAIL
    ).id
    wait_until(lambda: dead_letter(task_id) is not None, 60, "the dead letter")
    letter = dead_letter(task_id)
    assert letter is not None
    assert letter.error_type == "MalformedMessage"
    assert "names an unknown booking" in letter.reason
    assert letter.attempts == 1
    with session_scope() as session:
        delivery = session.get(Delivery, (uuid.UUID(envelope.event_id), "email"))
        assert delivery is not None
        assert delivery.status == "failed"


def test_unknown_tasks_and_undecodable_messages_are_dead_lettered(worker: Worker) -> None:
    """Celery itself acks these silently; the notifier's consumer dead-letters them first."""
    unknown = worker.celery.send_task(
        "notifier.send_carrier_pigeon", args=[{"event_id": "x"}], queue=QUEUE_EMAIL
    ).id
    broken_json, pickled = str(uuid.uuid4()), str(uuid.uuid4())
    with worker.celery.producer_or_acquire() as producer:
        for task_id, body, content_type in (
            (broken_json, b'[["half a message"', "application/json"),
            (pickled, b"\x80\x04K\x01.", "application/x-python-serialize"),
        ):
            producer.publish(
                body,
                routing_key=QUEUE_EMAIL,
                exchange="",
                content_type=content_type,
                content_encoding="binary",
                headers={"task": TASK_SEND_BOOKING_CONFIRMATION, "id": task_id, "lang": "py"},
                serializer=None,
            )
    reference, _ = confirm_booking(worker)

    wait_until(
        lambda: all(dead_letter(t) for t in (unknown, broken_json, pickled)), 60, "dead letters"
    )
    by_id = {t: dead_letter(t) for t in (unknown, broken_json, pickled)}
    assert all(letter is not None and letter.service == "notifier" for letter in by_id.values())
    assert "unknown task 'notifier.send_carrier_pigeon'" in by_id[unknown].reason  # type: ignore[union-attr]
    assert by_id[unknown].message == {"args": [{"event_id": "x"}], "kwargs": {}}  # type: ignore[union-attr]
    assert "undecodable message" in by_id[broken_json].reason  # type: ignore[union-attr]
    assert "half a message" in json.dumps(by_id[broken_json].message)  # type: ignore[union-attr]
    assert "ContentDisallowed" in by_id[pickled].reason  # type: ignore[union-attr]
    # ...and the worker went on consuming.
    wait_until(lambda: len(worker.smtp.for_booking(reference)) == 1, 30, "the confirmation")
    worker.notifier.assert_running()


def test_a_bug_in_handling_a_message_dead_letters_it_with_the_reason(worker: Worker) -> None:
    """An error nobody foresaw (here a ValueError on an aggregate id that is not a UUID) used to
    escape the task and be acked: lost, with no retry and no dead letter."""
    message = to_json(
        build_envelope(
            "booking.confirmed",
            "not-a-uuid",
            events_pb2.BookingConfirmed(booking_id=str(uuid.uuid4())),
        )
    )
    task_id = worker.celery.send_task(
        TASK_SEND_BOOKING_CONFIRMATION, args=[message], queue=QUEUE_EMAIL
    ).id

    wait_until(lambda: dead_letter(task_id), 60, "the dead letter")
    letter = dead_letter(task_id)
    assert letter is not None
    assert letter.error_type == "ValueError"
    assert letter.reason.startswith("permanent error: ValueError")

    def failed() -> bool:
        row = task_row(task_id)  # the status writer records it in the background
        return row is not None and row.status is TaskStatus.FAILURE

    wait_until(failed, 30, "the task's FAILURE status")


def test_an_smtp_outage_is_retried_with_backoff_and_the_email_sent_once(worker: Worker) -> None:
    worker.smtp.stop()
    try:
        reference, task_id = confirm_booking(worker)

        def retried() -> bool:
            row = task_row(task_id)
            return row is not None and row.status is TaskStatus.RETRY and row.retries >= 1

        wait_until(retried, 30, "a recorded retry")
        row = task_row(task_id)
        assert row is not None
        assert row.error is not None
        assert "ConnectionRefusedError" in row.error
    finally:
        worker.smtp.start()

    def succeeded() -> bool:
        row = task_row(task_id)
        return row is not None and row.status is TaskStatus.SUCCESS

    wait_until(succeeded, 30, "the retried task to succeed")
    row = task_row(task_id)
    assert row is not None
    assert row.retries >= 1
    assert row.runtime_seconds is not None
    assert row.completed_at is not None
    assert row.args_summary["args"][0]["event_type"] == "booking.confirmed"
    assert "ops@example.com" not in json.dumps(row.args_summary), "no personal data"
    assert len(worker.smtp.for_booking(reference)) == 1
    assert dead_letter(task_id) is None


def admin(*args: str, stack: Stack, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "boxoffice_booking.admin", *args],
        env=stack.env(),
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        check=False,
    )


def test_a_message_that_runs_out_of_retries_is_dead_lettered_and_replays_once(
    worker: Worker, stack: Stack
) -> None:
    worker.smtp.stop()
    try:
        reference, task_id = confirm_booking(worker)
        wait_until(lambda: dead_letter(task_id) is not None, 60, "the retries to run out")
    finally:
        worker.smtp.start()
    letter = dead_letter(task_id)
    assert letter is not None
    assert letter.attempts == 5
    assert letter.reason.startswith("gave up after 5 attempts: ")
    assert worker.smtp.for_booking(reference) == []

    listed = admin("--json", "dead-letters", "list", "--service", "notifier", stack=stack)
    assert listed.returncode == 0, listed.stderr
    assert str(letter.id) in [item["id"] for item in json.loads(listed.stdout)]
    inspected = admin("--json", "dead-letters", "inspect", str(letter.id)[:8], stack=stack)
    assert inspected.returncode == 0, inspected.stderr
    detail = json.loads(inspected.stdout)
    assert detail["message"]["args"][0]["event_type"] == "booking.confirmed"
    assert detail["attempts"] == 5

    replayed = admin("--json", "dead-letters", "replay", str(letter.id), stack=stack)
    assert replayed.returncode == 0, replayed.stderr
    wait_until(lambda: len(worker.smtp.for_booking(reference)) == 1, 30, "the replayed email")
    again = admin("dead-letters", "replay", str(letter.id), stack=stack)
    assert "already replayed" in again.stderr
    new_task = json.loads(replayed.stdout)[0]["task_id"]
    wait_until(
        lambda: (row := task_row(new_task)) is not None and row.status is TaskStatus.SUCCESS,
        30,
        "the replayed task's status",
    )
    # Replaying once more by hand (the same event) still sends nothing twice.
    worker.celery.send_task(
        TASK_SEND_BOOKING_CONFIRMATION, args=letter.message["args"], queue=QUEUE_EMAIL
    )
    threading.Event().wait(2)
    assert len(worker.smtp.for_booking(reference)) == 1


def test_task_status_api_and_monitoring_queries(worker: Worker) -> None:
    reference, task_id = confirm_booking(worker)
    wait_until(
        lambda: (row := task_row(task_id)) is not None and row.status is TaskStatus.SUCCESS,
        30,
        "the confirmation task",
    )
    auth = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=worker.api_url, timeout=10) as client:
        one = client.get(f"/v1/tasks/{task_id}", headers=auth)
        assert one.status_code == 200, one.text
        body = one.json()
        assert body["status"] == "SUCCESS"
        assert body["name"] == TASK_SEND_BOOKING_CONFIRMATION
        assert body["queue"] == QUEUE_EMAIL
        assert body["result"] == {"value": "sent"}
        assert body["runtime_seconds"] >= 0

        failed = client.get(
            "/v1/tasks",
            params={"status": "FAILURE", "name": TASK_SEND_BOOKING_CONFIRMATION, "limit": 100},
            headers=auth,
        )
        assert failed.status_code == 200, failed.text
        assert failed.json()["items"], "the poisoned messages are listed as failures"
        assert {t["status"] for t in failed.json()["items"]} == {"FAILURE"}

        stats = client.get("/v1/tasks/stats", headers=auth)
        assert stats.status_code == 200, stats.text
        stats_body = stats.json()
        runtimes = {r["name"]: r for r in stats_body["runtime_by_name"]}
        confirmation = runtimes[TASK_SEND_BOOKING_CONFIRMATION]
        assert confirmation["completed"] >= 1
        assert confirmation["p95_seconds"] >= confirmation["avg_seconds"] * 0.5
        assert stats_body["failures_last_hour"][TASK_SEND_BOOKING_CONFIRMATION] >= 3
        assert set(stats_body["backlog"]["waiting"]) >= {"notifier.email", "reaper"}

        for path, status, slug in [
            ("/v1/tasks/no-such-task", 404, "not-found"),
            ("/v1/tasks?status=EXPLODED", 422, "validation-error"),
            (
                "/v1/tasks?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
                422,
                "invalid-query",
            ),
            # A time without a zone is refused by the parameter's type (RFC 3339).
            ("/v1/tasks?since=2026-01-02T00:00:00", 422, "validation-error"),
            ("/v1/tasks?until=0.5", 422, "validation-error"),
            ("/v1/tasks?limit=100000", 422, "validation-error"),
            ("/v1/tasks/" + "x" * 100, 422, "validation-error"),
        ]:
            response = client.get(path, headers=auth)
            assert response.status_code == status, (path, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["type"].endswith("/" + slug)
        assert client.get(f"/v1/tasks/{task_id}").status_code == 401
    assert reference


def test_admin_cli_shows_queues_and_purges_only_with_confirmation(
    worker: Worker, stack: Stack
) -> None:
    shown = admin("--json", "queues", stack=stack)
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert set(data["queues"]) == {"notifier.email", "notifier.sms", "reaper"}
    assert data["dead_letters"].get("notifier", 0) >= 3

    # Nothing consumes notifier.sms here: park two more messages there, then purge.
    for _ in range(2):
        worker.celery.send_task("notifier.send_sms_probe", args=[{}], queue="notifier.sms")

    def waiting() -> int:
        data = json.loads(admin("--json", "queues", stack=stack).stdout)
        return int(data["queues"]["notifier.sms"])

    parked = waiting()
    assert parked >= 2
    refused = admin("purge-queue", "notifier.sms", stack=stack, stdin="")
    assert refused.returncode == 1
    assert waiting() == parked
    wrong = admin("purge-queue", "notifier.sms", stack=stack, stdin="yes\n")
    assert wrong.returncode == 1
    purged = admin("--json", "purge-queue", "notifier.sms", "--yes", stack=stack)
    assert purged.returncode == 0, purged.stderr
    assert json.loads(purged.stdout) == {"queue": "notifier.sms", "purged": parked}
    # The probes are gone for good. Event deliveries still PENDING in the tasks table are
    # not: once their queue is empty the relay re-sends them (nothing is lost by a purge),
    # so whatever is back in the queue must be exactly such a re-sent delivery.
    client = redis_client(stack.redis_url)
    try:
        back = [
            json.loads(raw)["headers"]
            for key in priority_keys("notifier.sms")
            for raw in client.lrange(key, 0, -1)
        ]
    finally:
        client.close()
    assert all(h["task"] != "notifier.send_sms_probe" for h in back), back
    if back:
        with session_scope() as session:
            rows = {
                row.id: row
                for row in session.scalars(
                    select(TaskRecord).where(TaskRecord.id.in_([h["id"] for h in back]))
                )
            }
        assert set(rows) == {h["id"] for h in back}
        assert all(row.queue == "notifier.sms" for row in rows.values())

    stats = admin("tasks", "stats", stack=stack)
    assert stats.returncode == 0, stats.stderr
    assert TASK_SEND_BOOKING_CONFIRMATION in stats.stdout
    failures = admin("--json", "tasks", "list", "--status", "FAILURE", stack=stack)
    assert failures.returncode == 0
    assert json.loads(failures.stdout)

    deleted = admin("--json", "dead-letters", "purge", "--service", "nobody", "--yes", stack=stack)
    assert json.loads(deleted.stdout) == {"deleted": 0}


def test_sigterm_is_a_warm_shutdown_that_finishes_the_email_in_hand(worker: Worker) -> None:
    worker.smtp.slow.delay = 2.0
    try:
        reference, task_id = confirm_booking(worker)
        wait_until(
            lambda: (row := task_row(task_id)) is not None and row.status is TaskStatus.STARTED,
            30,
            "the worker to start sending",
        )
        worker.notifier.stop(timeout=30)  # SIGTERM, then wait
        assert worker.notifier.process is not None
        assert worker.notifier.process.returncode == 0
    finally:
        worker.smtp.slow.delay = 0.0
    assert len(worker.smtp.for_booking(reference)) == 1, "the email in hand was finished"
    row = task_row(task_id)
    assert row is not None
    assert row.status is TaskStatus.SUCCESS
    with session_scope() as session:
        event_id = session.scalars(
            select(OutboxEvent.event_id)
            .where(OutboxEvent.event_type == "booking.confirmed")
            .order_by(OutboxEvent.id.desc())
        ).first()
        delivery = session.get(Delivery, (event_id, "email"))
        assert delivery is not None
        assert delivery.status == "sent"


def test_max_tasks_per_child_recycles_prefork_children(worker: Worker, stack: Stack) -> None:
    worker.notifier.stop()
    recycling = ServiceProcess(
        "notifier-prefork",
        "boxoffice_notifier.main",
        worker.notifier.env,
        stack.var / "reliable-notifier-logs",
        args=("--pool=prefork", "--concurrency=1"),
    )
    recycling.env = {**worker.notifier.env, "BOXOFFICE_WORKER_MAX_TASKS_PER_CHILD": "2"}
    recycling.start()
    try:
        recycling.wait_for_log("ready.")
        task_ids = [confirm_booking(worker)[1] for _ in range(6)]

        def all_done() -> bool:
            rows = [task_row(t) for t in task_ids]
            return all(r is not None and r.status is TaskStatus.SUCCESS for r in rows)

        wait_until(all_done, 60, "six confirmations")
        workers = {row.worker for t in task_ids if (row := task_row(t)) is not None}
        # Two tasks per child: six tasks need at least three different child processes.
        assert len(workers) >= 3, workers
    finally:
        recycling.stop()
        worker.notifier.start()
        worker.notifier.wait_for_log("ready.", timeout=60)
