"""Reminders claimed once, per-venue report figures, and the shared rate limit (real PG, Redis)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from boxoffice.booking.v1 import events_pb2
from boxoffice_contracts.envelope import build_envelope, to_json
from boxoffice_db.engine import session_scope
from boxoffice_db.models import Booking, BookingStatus, OutboxEvent
from boxoffice_messaging.celery_app import create_celery_app
from boxoffice_messaging.outbox import publish_event
from boxoffice_messaging.redis_client import redis_client
from boxoffice_messaging.routes import (
    QUEUE_EMAIL,
    QUEUE_SMS,
    TASK_SEND_BOOKING_CONFIRMATION,
    TASK_SEND_BOOKING_CONFIRMATION_SMS,
)
from boxoffice_notifier.ratelimit import RateLimited, RateLimiter
from boxoffice_notifier.reminders import claim_due_reminders, reminder_event_id
from boxoffice_notifier.reports import assemble_report, venue_figures
from boxoffice_settings import get_settings
from sqlalchemy import select, update

from tests.support.catalog import make_booking, make_showtime
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

WINDOW = timedelta(hours=2)


def reminder_rows(booking_id: uuid.UUID) -> list[OutboxEvent]:
    with session_scope() as session:
        return list(
            session.scalars(
                select(OutboxEvent).where(
                    OutboxEvent.aggregate_id == booking_id,
                    OutboxEvent.event_type == "notifier.showtime_reminder_due",
                )
            )
        )


def test_a_booking_is_claimed_for_a_reminder_once_whatever_the_cadence(stack: Stack) -> None:
    soon = make_showtime(starts_in=timedelta(minutes=90))
    later = make_showtime(starts_in=timedelta(hours=5))
    due = make_booking(soon, ["B1", "B2"])
    unpaid = make_booking(soon, ["B3"], confirm=False)
    not_yet = make_booking(later, ["B1"])

    for _ in range(3):
        with session_scope() as session:
            claim_due_reminders(session, WINDOW)

    [row] = reminder_rows(due)
    assert row.event_id == reminder_event_id(due)
    assert row.payload["showtime_reminder_due"]["booking_id"] == str(due)
    assert reminder_rows(unpaid) == []
    assert reminder_rows(not_yet) == []


def test_concurrent_reminder_runs_claim_each_booking_once(stack: Stack) -> None:
    soon = make_showtime(starts_in=timedelta(minutes=30))
    bookings = [make_booking(soon, [f"C{n}"]) for n in range(2, 8)]
    barrier = threading.Barrier(4)

    def run() -> None:
        barrier.wait()
        with session_scope() as session:
            claim_due_reminders(session, WINDOW)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [len(reminder_rows(b)) for b in bookings] == [1] * len(bookings)


def test_venue_figures_count_the_day_per_venue(stack: Stack) -> None:
    name = f"Report Venue {uuid.uuid4().hex[:6]}"
    showtime = make_showtime(venue_name=name)
    make_booking(showtime, ["D1", "D2"])
    make_booking(showtime, ["D3"])
    expired = make_booking(showtime, ["D4"], confirm=False)
    make_booking(showtime, ["D5"], confirm=False)  # still pending: counted nowhere
    with session_scope() as session:
        session.execute(
            update(Booking)
            .where(Booking.id == expired)
            .values(status=BookingStatus.EXPIRED, expired_at=datetime.now(UTC))
        )
        booking = session.get(Booking, expired)
        assert booking is not None
        venue_id = booking.showtime.screen.venue_id

    with session_scope() as session:
        figures = venue_figures(session, venue_id, datetime.now(UTC).date())
        yesterday = venue_figures(session, venue_id, datetime.now(UTC).date() - timedelta(1))
    assert (figures.venue, figures.bookings, figures.seats_sold) == (name, 2, 3)
    assert figures.revenue == {"INR": 3 * 20000}
    assert figures.expiries == 1
    assert (yesterday.bookings, yesterday.expiries, yesterday.revenue) == (0, 0, {})

    report = assemble_report(datetime.now(UTC).date(), [figures.to_json(), figures.to_json()])
    assert report.total.bookings == 4
    assert report.total.revenue_text == "INR 1,200.00"


def test_the_rate_limit_is_shared_by_every_worker(stack: Stack) -> None:
    provider = f"test-{uuid.uuid4().hex[:6]}"
    per_second = 10.0
    # Two limiters with their own Redis connections stand for two worker processes.
    limiters = [RateLimiter(redis_client(stack.redis_url), provider, per_second) for _ in range(2)]
    grants: list[float] = []
    lock = threading.Lock()

    def send(limiter: RateLimiter) -> None:
        for _ in range(4):
            limiter.acquire()
            with lock:
                grants.append(time.monotonic())

    threads = [threading.Thread(target=send, args=(limiters[n % 2],)) for n in range(4)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(grants) == 16
    # 16 messages at 10/s: the first goes at once, the other 15 one interval apart.
    assert max(grants) - started >= 15 / per_second * 0.9
    grants.sort()
    in_any_half_second = max(sum(1 for g in grants if start <= g < start + 0.5) for start in grants)
    assert in_any_half_second <= 0.5 * per_second + 2


def test_a_spent_budget_past_the_wait_limit_is_a_retry_not_a_block(stack: Stack) -> None:
    limiter = RateLimiter(redis_client(stack.redis_url), f"slow-{uuid.uuid4()}", 0.5)
    limiter.acquire()
    with pytest.raises(RateLimited) as raised:
        limiter.acquire(max_wait=0.1)
    assert raised.value.retry_after is not None
    assert 0 < raised.value.retry_after <= 2


def test_a_confirmation_is_published_as_one_group_over_both_channel_queues(stack: Stack) -> None:
    app = create_celery_app("test-publisher", get_settings())
    client = redis_client(stack.redis_url, decode_responses=True)
    envelope = build_envelope(
        "booking.confirmed",
        uuid.uuid4(),
        events_pb2.BookingConfirmed(seats=["A2"], total_minor=100, currency="INR"),
    )
    publish_event(app, envelope.event_type, to_json(envelope))

    def ours(queue: str) -> list[dict[str, Any]]:
        found = []
        raws: list[str] = client.lrange(queue, 0, -1)  # type: ignore[assignment]
        for raw in raws:
            message = json.loads(raw)
            if envelope.event_id in raw:
                client.lrem(queue, 1, raw)  # no worker should see this fake booking
                found.append(message["headers"])
        return found

    [email] = ours(QUEUE_EMAIL)
    [sms] = ours(QUEUE_SMS)
    assert (email["task"], sms["task"]) == (
        TASK_SEND_BOOKING_CONFIRMATION,
        TASK_SEND_BOOKING_CONFIRMATION_SMS,
    )
    assert email["group"] is not None
    assert email["group"] == sms["group"]
