"""Message contracts over real PostgreSQL, Redis and a notifier worker process.

Producers are the booking API (a live process: holds, payments, cancellations) and the
reaper's own expiry function, writing the outbox; the relay's `publish_pending` puts their
events on Redis exactly as in production; the consumer is `boxoffice-notifier` running as its
own process, sending to a real SMTP server.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from boxoffice.messaging.v1.envelope_pb2 import Envelope
from boxoffice_bookings.expiry import expire_batch
from boxoffice_client import BoxofficeClient
from boxoffice_contracts.envelope import PAYLOAD_FIELDS, SCHEMA_VERSION
from boxoffice_db.engine import session_scope
from boxoffice_db.models import Booking, DeadLetter, OutboxEvent, ShowtimeSeat
from boxoffice_messaging.celery_app import create_celery_app
from boxoffice_messaging.outbox import publish_pending
from boxoffice_messaging.redis_client import redis_client
from boxoffice_messaging.routes import EVENT_ROUTES, QUEUE_EMAIL
from boxoffice_settings import get_settings
from google.protobuf import json_format
from redis import Redis
from sqlalchemy import func, select, update

from tests.support.catalog import make_showtime
from tests.support.live_api import LiveApi
from tests.support.processes import ServiceProcess, wait_until
from tests.support.smtp import SmtpServer
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

CUSTOMER = "contract@example.com"


@dataclass
class Published:
    """The events the producers wrote, and the raw Celery messages the relay put on Redis."""

    rows: list[OutboxEvent]
    wire: list[dict[str, Any]]


def produce_every_event(api: LiveApi, showtime_id: uuid.UUID) -> list[uuid.UUID]:
    """Hold, confirm and cancel through the live API; expire with the reaper's own function."""
    with BoxofficeClient(api.base_url, api.api_key) as client:
        confirmed = client.create_booking(showtime_id, ["A2", "A3"], CUSTOMER).id
        cancelled = client.create_booking(showtime_id, ["B1"], CUSTOMER).id
        expired = client.create_booking(showtime_id, ["C1"], CUSTOMER).id
        client.pay(confirmed)
        client.cancel(cancelled)
    with session_scope() as session:
        past = func.now() - timedelta(seconds=1)
        session.execute(update(Booking).where(Booking.id == expired).values(expires_at=past))
        session.execute(
            update(ShowtimeSeat)
            .where(ShowtimeSeat.booking_id == expired)
            .values(hold_expires_at=past)
        )
    with session_scope() as session:
        expire_batch(session, get_settings().reaper_batch_size)
    return [confirmed, cancelled, expired]


def raw_messages(redis: Redis, queue: str) -> list[dict[str, Any]]:
    """The Celery messages waiting in a queue, decoded from kombu's Redis format."""
    messages = []
    for raw in redis.lrange(queue, 0, -1):
        message = json.loads(raw)
        assert message["content-type"] == "application/json"
        assert message["properties"]["body_encoding"] == "base64"
        body = json.loads(base64.b64decode(message["body"]))
        messages.append({"headers": message["headers"], "body": body})
    return messages


@pytest.fixture(scope="module")
def published(stack: Stack, api: LiveApi) -> Published:
    redis = redis_client(stack.redis_url)
    redis.delete(QUEUE_EMAIL)
    booking_ids = produce_every_event(api, make_showtime(rows=3, seats_per_row=5))
    with session_scope() as session:
        rows = list(
            session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.aggregate_id.in_(booking_ids))
                .order_by(OutboxEvent.id)
            )
        )
        session.expunge_all()
    app = create_celery_app("contract-relay", get_settings())
    while True:
        with session_scope() as session:
            if publish_pending(session, app, 500) == 0:
                break
    wire = raw_messages(redis, QUEUE_EMAIL)
    return Published(rows, wire)


@pytest.fixture(scope="module")
def notifier(stack: Stack, published: Published) -> Iterator[tuple[ServiceProcess, SmtpServer]]:
    smtp = SmtpServer().start()
    env = stack.env(BOXOFFICE_SMTP_HOST="127.0.0.1", BOXOFFICE_SMTP_PORT=str(smtp.port))
    worker = ServiceProcess(
        "contract-notifier", "boxoffice_notifier.main", env, stack.var / "contract-logs"
    ).start()
    try:
        worker.wait_for_log("ready.", timeout=120)
        yield worker, smtp
    finally:
        worker.stop()
        smtp.stop()


def emails_for(smtp: SmtpServer, event_id: str) -> int:
    return sum(1 for m in smtp.messages() if m["X-Boxoffice-Event-Id"] == event_id)


def wait_for_email(smtp: SmtpServer, event_id: str) -> None:
    wait_until(lambda: emails_for(smtp, event_id) >= 1, 60, f"an email for event {event_id}")


def send(app_name: str, task: str, message: object) -> str:
    """Publish `message` to `task` as a producer would; returns the Celery task id."""
    app = create_celery_app(app_name, get_settings())
    return str(app.send_task(task, args=[message], queue=QUEUE_EMAIL).id)


def dead_letter_reason(task_id: str) -> str | None:
    with session_scope() as session:
        return session.scalars(
            select(DeadLetter.reason).where(DeadLetter.task_id == task_id)
        ).first()


def test_each_producer_writes_its_event_as_a_strict_envelope(published: Published) -> None:
    # A hold writes no event: only its outcomes do.
    assert {row.event_type for row in published.rows} == {
        "booking.confirmed",
        "booking.cancelled",
        "booking.expired",
    }
    for row in published.rows:
        # Strict: a producer never writes a field the contract does not define.
        envelope = json_format.ParseDict(row.payload, Envelope(), ignore_unknown_fields=False)
        assert envelope.event_id == str(row.event_id)
        assert envelope.event_type == row.event_type
        assert envelope.aggregate_id == str(row.aggregate_id)
        assert envelope.schema_version == SCHEMA_VERSION
        assert datetime.fromisoformat(envelope.occurred_at).tzinfo is not None
        payload_field = PAYLOAD_FIELDS[row.event_type]
        assert envelope.WhichOneof("payload") == payload_field
        payload = getattr(envelope, payload_field)
        assert payload.booking_id == str(row.aggregate_id)
        assert list(payload.seats)
        # The binary encoding round-trips too (the JSON mapping is what Celery carries).
        assert Envelope.FromString(envelope.SerializeToString()) == envelope


def test_the_relay_sends_each_event_to_every_routed_task_as_its_envelope(
    published: Published,
) -> None:
    by_event = {str(row.event_id): row for row in published.rows}
    sent = {
        (m["body"][0][0]["event_id"], m["headers"]["task"])
        for m in published.wire
        if m["body"][0][0]["event_id"] in by_event
    }
    expected = {
        (str(row.event_id), route.task)
        for row in published.rows
        for route in EVENT_ROUTES[row.event_type]
        if route.queue == QUEUE_EMAIL
    }
    assert expected
    assert expected <= sent
    for message in published.wire:
        args, kwargs, _ = message["body"]
        assert kwargs == {}
        assert len(args) == 1
        json_format.ParseDict(args[0], Envelope(), ignore_unknown_fields=False)


def test_the_consumer_accepts_what_the_producers_made(
    published: Published, notifier: tuple[ServiceProcess, SmtpServer]
) -> None:
    worker, smtp = notifier
    routed = [row for row in published.rows if EVENT_ROUTES[row.event_type]]
    for row in routed:
        wait_for_email(smtp, str(row.event_id))
    assert all(emails_for(smtp, str(row.event_id)) == 1 for row in routed)
    worker.assert_running()


def test_a_message_with_unknown_newer_fields_is_still_accepted(
    published: Published, notifier: tuple[ServiceProcess, SmtpServer]
) -> None:
    _, smtp = notifier
    confirmed = next(r for r in published.rows if r.event_type == "booking.confirmed")
    newer = json.loads(json.dumps(confirmed.payload))
    newer["event_id"] = str(uuid.uuid4())
    newer["schema_version"] = SCHEMA_VERSION + 1
    newer["delivery_priority"] = "high"  # a field a later envelope version adds
    newer["booking_confirmed"]["loyalty_points"] = 120  # and one a later payload adds
    route = EVENT_ROUTES["booking.confirmed"][0]
    send("contract-producer-v2", route.task, newer)
    wait_for_email(smtp, newer["event_id"])


@pytest.mark.parametrize(
    "message",
    [
        "not an envelope",
        {"event_id": "not-a-uuid", "event_type": "booking.confirmed"},
        {"event_id": str(uuid.uuid4()), "event_type": "booking.confirmed", "schema_version": "x"},
    ],
    ids=["not-an-object", "bad-event-id", "wrong-field-type"],
)
def test_an_unparseable_message_is_dead_lettered_and_consumption_goes_on(
    message: object, published: Published, notifier: tuple[ServiceProcess, SmtpServer]
) -> None:
    worker, smtp = notifier
    route = EVENT_ROUTES["booking.confirmed"][0]
    task_id = send("contract-poisoner", route.task, message)
    wait_until(
        lambda: dead_letter_reason(task_id) is not None,
        60,
        "the notifier to dead-letter the malformed message",
    )
    reason = dead_letter_reason(task_id)
    assert reason is not None
    assert "MalformedMessage" in reason
    # It goes on consuming: a good message sent after the poison is delivered.
    confirmed = next(r for r in published.rows if r.event_type == "booking.confirmed")
    good = {**confirmed.payload, "event_id": str(uuid.uuid4())}
    send("contract-producer", route.task, good)
    wait_for_email(smtp, good["event_id"])
    worker.assert_running()
