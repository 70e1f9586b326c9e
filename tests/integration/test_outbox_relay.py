"""The outbox relay on real PostgreSQL and Redis: order per aggregate, replicas, outages."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import boxoffice_messaging.outbox as outbox_module
import pytest
from boxoffice.booking.v1 import events_pb2
from boxoffice_booking.relay import BACKLOG, OLDEST_AGE, refresh_backlog_gauges, run_relay
from boxoffice_contracts.envelope import build_envelope
from boxoffice_db.engine import get_sessionmaker, session_scope
from boxoffice_db.models import OutboxEvent, TaskRecord, TaskStatus
from boxoffice_devstack.servers import RedisServer
from boxoffice_messaging.celery_app import create_celery_app
from boxoffice_messaging.outbox import add_event, outbox_backlog, publish_pending, task_id_for
from boxoffice_messaging.queues import queue_lengths
from boxoffice_messaging.redelivery import redeliver_lost
from boxoffice_messaging.redis_client import redis_client
from boxoffice_messaging.routes import EVENT_ROUTES, QUEUE_EMAIL, QUEUE_SMS
from boxoffice_messaging.status_writer import StatusChange, write_changes
from boxoffice_settings import get_settings
from kombu.exceptions import BatchPublishError  # type: ignore[attr-defined]  # 5.7; stubs older
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert

from tests.support.processes import wait_until
from tests.support.stack import Stack
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration


@pytest.fixture
def clean_outbox(stack: Stack) -> None:
    """Mark what other tests left as sent, so each test sees only its own events."""
    with session_scope() as session:
        session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.published_at.is_(None))
            .values(published_at=OutboxEvent.created_at)
        )


def stage(event_type: str, aggregate: uuid.UUID) -> uuid.UUID:
    """Write one event to the outbox in its own transaction; returns its event id."""
    if event_type == "hold.created":
        payload: object = events_pb2.HoldCreated(booking_id=str(aggregate))
    else:
        payload = events_pb2.BookingConfirmed(booking_id=str(aggregate))
    envelope = build_envelope(event_type, aggregate, payload)  # type: ignore[arg-type]
    with session_scope() as session:
        add_event(session, envelope)
    return uuid.UUID(envelope.event_id)


def published(event_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    with session_scope() as session:
        return set(
            session.scalars(
                select(OutboxEvent.event_id).where(
                    OutboxEvent.event_id.in_(event_ids), OutboxEvent.published_at.is_not(None)
                )
            )
        )


def test_a_second_relay_skips_locked_rows_and_keeps_each_aggregates_order(
    clean_outbox: None,
) -> None:
    # "hold.created" is routed to no task (holds no longer write it; a row written before is
    # marked published and sent nowhere), so nothing lands in the shared Redis.
    app = create_celery_app("test-relay", get_settings())
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    a1, b1 = stage("hold.created", a), stage("hold.created", b)
    a2, c1, b2 = stage("hold.created", a), stage("hold.created", c), stage("hold.created", b)

    first = get_sessionmaker()()
    try:
        # Relay 1 locks the two oldest rows (a1, b1) and has not committed yet.
        assert publish_pending(first, app, batch_size=2) == 2
        done = threading.Event()

        def second_relay() -> None:
            with session_scope() as session:
                publish_pending(session, app, batch_size=100)
            done.set()

        thread = threading.Thread(target=second_relay)
        thread.start()
        assert done.wait(10), "the second relay waited on locked rows instead of skipping them"
        thread.join()
        # Relay 2 skipped a1/b1; it published c1 but held back a2 and b2, whose aggregates
        # still have an older event in flight with relay 1.
        assert published([a1, b1, a2, c1, b2]) == {c1}
        first.commit()
    finally:
        first.close()
    assert published([a1, b1, a2, c1, b2]) == {a1, b1, c1}
    with session_scope() as session:
        publish_pending(session, app, batch_size=100)
    assert published([a1, b1, a2, c1, b2]) == {a1, b1, a2, c1, b2}


def test_one_relay_publishes_an_aggregates_events_in_one_batch_in_order(
    clean_outbox: None,
) -> None:
    app = create_celery_app("test-relay", get_settings())
    booking = uuid.uuid4()
    events = [stage("hold.created", booking) for _ in range(5)]
    with session_scope() as session:
        assert publish_pending(session, app, batch_size=100) == 5
    with session_scope() as session:
        ids = list(
            session.scalars(
                select(OutboxEvent.event_id)
                .where(OutboxEvent.event_id.in_(events))
                .order_by(OutboxEvent.published_at, OutboxEvent.id)
            )
        )
    assert ids == events


def test_a_batch_goes_to_redis_in_one_round_trip_in_order_and_again_after_a_failed_flush(
    stack: Stack, clean_outbox: None
) -> None:
    """Twelve bookings' confirmations are 24 LPUSHes (an email and an SMS task each): the
    relay pipelines them, so the batch waits on Redis once, not once per message. The queues
    still get each booking's tasks in the order the events were written, on a Redis where no
    queue was ever declared. A flush that fails rolls the batch back, and the next one sends it
    whole."""
    redis = RedisServer(stack.var / "batch-redis").start()
    proxy = TcpProxy(("127.0.0.1", redis.port)).start()
    app = create_celery_app(
        "test-relay",
        get_settings().model_copy(update={"redis_url": f"redis://127.0.0.1:{proxy.port}/0"}),
    )
    try:
        # The producer's connection is opened (and said hello) before the count starts.
        stage("booking.confirmed", uuid.uuid4())
        with session_scope() as session:
            publish_pending(session, app, batch_size=100)
        client = redis_client(redis.url)
        client.delete(QUEUE_EMAIL, QUEUE_SMS)

        events = []
        for n in range(12):
            booking = uuid.uuid4()
            envelope = build_envelope(
                "booking.confirmed",
                booking,
                events_pb2.BookingConfirmed(
                    booking_id=str(booking), seats=[f"Ё{n}", f"座{n}"], currency="JPY"
                ),
            )
            with session_scope() as session:
                add_event(session, envelope)
            events.append(uuid.UUID(envelope.event_id))
        turns = proxy.client_turns
        with session_scope() as session:
            assert publish_pending(session, app, batch_size=100) == 12
        # Waiting for each reply would take 24 turns; the pipeline is written in a few
        # buffers, which Redis may start answering before the last one has arrived.
        assert proxy.client_turns - turns <= 6, proxy.client_turns - turns
        assert published(events) == set(events)
        # Nothing declared a queue (kombu keeps its bindings in Redis): a task goes to the list
        # its queue names all the same, and no worker needs to have started first.
        assert client.keys("_kombu.binding.*") == []
        email, sms = EVENT_ROUTES["booking.confirmed"]
        for route in (email, sms):
            # LPUSH adds at the head and workers BRPOP from the tail: oldest last here.
            queued = [json.loads(raw)["headers"]["id"] for raw in client.lrange(route.queue, 0, -1)]
            assert queued[::-1] == [task_id_for(e, route) for e in events]

        client.delete(QUEUE_EMAIL, QUEUE_SMS)
        again = [stage("booking.confirmed", uuid.uuid4()) for _ in range(3)]
        proxy.cut()
        with pytest.raises(BatchPublishError), session_scope() as session:
            publish_pending(session, app, batch_size=100)
        assert published(again) == set(), "marked published though Redis never took the batch"
        proxy.restore()
        with session_scope() as session:
            assert publish_pending(session, app, batch_size=100) == 3
        assert published(again) == set(again)
        queued = [json.loads(raw)["headers"]["id"] for raw in client.lrange(QUEUE_EMAIL, 0, -1)]
        assert queued[::-1] == [task_id_for(e, email) for e in again]
    finally:
        proxy.stop()
        redis.stop()


def test_relay_waits_out_a_redis_outage_and_loses_nothing(stack: Stack, clean_outbox: None) -> None:
    redis = RedisServer(stack.var / "relay-outage-redis").start()
    settings = get_settings().model_copy(
        update={"redis_url": redis.url, "relay_backoff_max_seconds": 1.0}
    )
    stop = threading.Event()
    relay = threading.Thread(target=run_relay, args=(stop, settings), daemon=True)
    try:
        relay.start()
        redis.stop()
        events = [stage("booking.confirmed", uuid.uuid4()) for _ in range(20)]
        threading.Event().wait(2)
        assert published(events) == set(), "published while Redis was down?"
        redis.start()
        wait_until(lambda: published(events) == set(events), 30, "the relay to catch up")
        with redis_client(redis.url) as client:
            # At least once: every event is in the queue (a retried batch may add copies).
            assert queue_lengths(client, (QUEUE_EMAIL,))[QUEUE_EMAIL] >= len(events)
        with session_scope() as session:
            route = EVENT_ROUTES["booking.confirmed"][0]
            rows = session.scalars(
                select(TaskRecord).where(TaskRecord.id.in_([task_id_for(e, route) for e in events]))
            ).all()
        assert len(rows) == len(events)
        assert {row.status for row in rows} == {TaskStatus.PENDING}
    finally:
        stop.set()
        relay.join(10)
        redis.stop()


def test_backlog_gauges_report_unsent_rows_and_the_oldest_age(clean_outbox: None) -> None:
    stage("hold.created", uuid.uuid4())
    stage("hold.created", uuid.uuid4())
    threading.Event().wait(1.1)
    refresh_backlog_gauges()
    assert BACKLOG._value.get() == 2
    assert OLDEST_AGE._value.get() >= 1.0
    with session_scope() as session:
        assert outbox_backlog(session).unsent == 2
        publish_pending(session, create_celery_app("test-relay", get_settings()), 100)
    refresh_backlog_gauges()
    assert BACKLOG._value.get() == 0
    assert OLDEST_AGE._value.get() == 0


def test_a_delivery_lost_in_redis_is_sent_again_once_its_queue_is_empty(
    stack: Stack, clean_outbox: None
) -> None:
    redis = RedisServer(stack.var / "redelivery-redis").start()
    app = create_celery_app(
        "test-relay", get_settings().model_copy(update={"redis_url": redis.url})
    )
    try:
        client = redis_client(redis.url)
        event_id = stage("booking.confirmed", uuid.uuid4())
        with session_scope() as session:
            publish_pending(session, app, batch_size=100)
        route = EVENT_ROUTES["booking.confirmed"][0]
        task_id = task_id_for(event_id, route)
        # The message vanishes (a worker killed between BRPOP and recording it as unacked).
        client.delete(QUEUE_EMAIL)
        with session_scope() as session:
            assert redeliver_lost(session, app, client, timedelta(minutes=5)) == 0, "too fresh"
            session.execute(
                update(TaskRecord)
                .where(TaskRecord.id == task_id)
                .values(
                    created_at=func.now() - timedelta(minutes=10),
                    updated_at=func.now() - timedelta(minutes=10),
                )
            )
        # Something else waits in the queue: the delivery may be behind it, so not yet.
        client.lpush(QUEUE_EMAIL, "placeholder")
        with session_scope() as session:
            assert redeliver_lost(session, app, client, timedelta(minutes=5)) == 0
        client.delete(QUEUE_EMAIL)
        with session_scope() as session:
            assert redeliver_lost(session, app, client, timedelta(minutes=5)) == 1
        [raw] = client.lrange(QUEUE_EMAIL, 0, -1)
        message = json.loads(raw)
        assert message["headers"]["id"] == task_id
        assert message["headers"]["task"] == route.task
        assert str(event_id) in message["headers"]["argsrepr"]
        with session_scope() as session:
            # Stamped: the next check does not send it again straight away.
            assert redeliver_lost(session, app, client, timedelta(minutes=5)) == 0
    finally:
        redis.stop()


def test_a_lost_delivery_is_re_sent_behind_a_backlog_in_another_queue(
    stack: Stack, clean_outbox: None
) -> None:
    """Rows waiting in a queue with a backlog cannot be re-sent, so they must not fill the
    check's limit: `make chaos` on Sentinel lost 468 emails in a failover's split brain and
    re-sent 52, the rest starved behind the SMS deliveries (no SMS worker ran) older than them.
    """
    redis = RedisServer(stack.var / "redelivery-backlog-redis").start()
    app = create_celery_app(
        "test-relay", get_settings().model_copy(update={"redis_url": redis.url})
    )
    try:
        client = redis_client(redis.url)
        earlier = [stage("booking.confirmed", uuid.uuid4()) for _ in range(5)]
        lost = stage("booking.confirmed", uuid.uuid4())
        with session_scope() as session:
            publish_pending(session, app, batch_size=100)
        email, sms = EVENT_ROUTES["booking.confirmed"]
        assert (email.queue, sms.queue) == (QUEUE_EMAIL, QUEUE_SMS)
        with session_scope() as session:
            # The earlier emails went out; their SMS wait in a queue nobody drains yet.
            session.execute(
                update(TaskRecord)
                .where(TaskRecord.id.in_([task_id_for(e, email) for e in earlier]))
                .values(status=TaskStatus.SUCCESS)
            )
            mine = [task_id_for(e, route) for e in [*earlier, lost] for route in (email, sms)]
            session.execute(
                update(TaskRecord)
                .where(TaskRecord.id.in_(mine))
                .values(
                    created_at=func.now() - timedelta(minutes=10),
                    updated_at=func.now() - timedelta(minutes=10),
                )
            )
            session.execute(
                update(TaskRecord)
                .where(TaskRecord.id == task_id_for(lost, email))
                .values(created_at=func.now() - timedelta(minutes=9))
            )
        client.delete(QUEUE_EMAIL)  # the last email was lost in Redis
        assert queue_lengths(client, (QUEUE_SMS,))[QUEUE_SMS] == 6
        with session_scope() as session:
            # A limit the SMS rows alone would fill.
            assert redeliver_lost(session, app, client, timedelta(minutes=5), limit=5) == 1
        [raw] = client.lrange(QUEUE_EMAIL, 0, -1)
        assert json.loads(raw)["headers"]["id"] == task_id_for(lost, email)
    finally:
        redis.stop()


def test_a_published_task_shows_ids_not_its_payload(stack: Stack, clean_outbox: None) -> None:
    """Events, Flower and worker logs show a task's argsrepr: the event's ids and type only."""
    redis = RedisServer(stack.var / "argsrepr-redis").start()
    app = create_celery_app(
        "test-relay", get_settings().model_copy(update={"redis_url": redis.url})
    )
    try:
        booking = uuid.uuid4()
        envelope = build_envelope(
            "booking.confirmed",
            booking,
            events_pb2.BookingConfirmed(
                booking_id=str(booking), seats=["Q7"], total_minor=98765, currency="INR"
            ),
        )
        with session_scope() as session:
            add_event(session, envelope)
        with session_scope() as session:
            publish_pending(session, app, batch_size=100)
        [raw] = redis_client(redis.url).lrange(QUEUE_EMAIL, 0, -1)
        headers = json.loads(raw)["headers"]
        assert envelope.event_id in headers["argsrepr"]
        assert "booking.confirmed" in headers["argsrepr"]
        assert "Q7" not in headers["argsrepr"]
        assert "98765" not in headers["argsrepr"]
        assert headers["kwargsrepr"] == "{}"
    finally:
        redis.stop()


def test_the_relay_records_each_tasks_booking_even_after_a_worker_wrote_the_row(
    stack: Stack, clean_outbox: None
) -> None:
    """A task's booking decides who may read its status (GET /v1/tasks/{id}). A worker's row
    written first (a task started from a message the relay published before) still gets the
    booking."""
    redis = RedisServer(stack.var / "task-booking-redis").start()
    app = create_celery_app(
        "test-relay", get_settings().model_copy(update={"redis_url": redis.url})
    )
    try:
        first, second = uuid.uuid4(), uuid.uuid4()
        email, sms = EVENT_ROUTES["booking.confirmed"]
        event = stage("booking.confirmed", first)
        started = task_id_for(event, email)
        write_changes([StatusChange(started, email.task, {"status": TaskStatus.STARTED})])
        stage("booking.confirmed", second)
        with session_scope() as session:
            publish_pending(session, app, batch_size=100)
        with session_scope() as session:
            rows = dict(
                session.execute(
                    select(TaskRecord.id, TaskRecord.booking_id).where(
                        TaskRecord.booking_id.in_([first, second]) | (TaskRecord.id == started)
                    )
                ).all()
            )
            status = session.get(TaskRecord, started)
            assert status is not None
            assert status.status is TaskStatus.STARTED, "the relay only adds the booking"
        assert rows[started] == first
        assert rows[task_id_for(event, sms)] == first
        assert list(rows.values()).count(second) == 2
    finally:
        redis.stop()


def test_a_worker_recording_a_task_as_the_relay_publishes_it_deadlocks_nothing(
    stack: Stack, clean_outbox: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker can take a task the instant its message is published, before the relay's
    transaction commits, and its status writer upserts a batch of tasks rows in its own order.
    When the relay wrote its rows after publishing, the two waited on each other: PostgreSQL
    broke the deadlock after deadlock_timeout (1 s) by failing the relay's batch, which went out
    a second time (seen in `make bench` as a commit → email p99 of 1.2 s)."""
    redis = RedisServer(stack.var / "status-deadlock-redis").start()
    app = create_celery_app(
        "test-relay", get_settings().model_copy(update={"redis_url": redis.url})
    )
    email = EVENT_ROUTES["booking.confirmed"][0]
    events = [stage("booking.confirmed", uuid.uuid4()) for _ in range(2)]
    # The worker's batch: the second event's task first.
    batch = [task_id_for(event, email) for event in reversed(events)]
    took_first, failures = threading.Event(), []

    def worker() -> None:
        try:
            with session_scope() as session:
                for task_id in batch:
                    row = {"id": task_id, "name": email.task, "status": TaskStatus.STARTED}
                    statement = insert(TaskRecord).values(row)
                    session.execute(
                        statement.on_conflict_do_update(
                            index_elements=[TaskRecord.id], set_={"status": TaskStatus.STARTED}
                        )
                    )
                    if not took_first.is_set():
                        took_first.set()
                        time.sleep(0.3)  # the relay goes on meanwhile
        except Exception as exc:
            failures.append(exc)

    thread = threading.Thread(target=worker)
    original = outbox_module.publish_event

    def publish_then_worker_starts(*args: Any, **kwargs: Any) -> None:
        original(*args, **kwargs)
        if not thread.is_alive() and not took_first.is_set():
            thread.start()
            took_first.wait(0.5)

    monkeypatch.setattr(outbox_module, "publish_event", publish_then_worker_starts)
    try:
        with session_scope() as session:
            assert publish_pending(session, app, batch_size=100) == 2
        thread.join(10)
        assert not thread.is_alive()
        assert failures == []
        assert published(events) == set(events)
        assert queue_lengths(redis_client(redis.url), (QUEUE_EMAIL,)) == {QUEUE_EMAIL: 2}, (
            "each message published once"
        )
        with session_scope() as session:
            statuses = {
                task.id: (task.status, task.booking_id)
                for task in session.scalars(select(TaskRecord).where(TaskRecord.id.in_(batch)))
            }
        assert {status for status, _ in statuses.values()} == {TaskStatus.STARTED}
        assert all(booking is not None for _, booking in statuses.values())
    finally:
        redis.stop()
