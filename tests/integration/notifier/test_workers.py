"""The notifier's email and SMS workers as real processes, against aiosmtpd and an HTTP gateway."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from pathlib import Path

import pytest
from boxoffice.booking.v1 import events_pb2
from boxoffice_contracts.envelope import build_envelope, to_json
from boxoffice_db.engine import session_scope
from boxoffice_db.models import DeadLetter, Delivery, OutboxEvent, TaskRecord, TaskStatus
from boxoffice_messaging.celery_app import create_celery_app
from boxoffice_messaging.outbox import publish_event, task_id_for
from boxoffice_messaging.routes import (
    EVENT_ROUTES,
    QUEUE_EMAIL,
    TASK_SEND_DAILY_REPORT,
    TASK_SEND_SHOWTIME_REMINDERS,
)
from boxoffice_notifier.reminders import reminder_event_id
from boxoffice_settings import get_settings
from celery import Celery
from sqlalchemy import select

from tests.support.catalog import make_booking, make_showtime
from tests.support.processes import ServiceProcess, wait_until
from tests.support.sms_gateway import SmsGatewayServer, SmsRequest
from tests.support.smtp import SmtpServer
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

OPERATORS = "ops@boxoffice.example,boxoffice-owner@boxoffice.example"


@dataclass
class Notifier:
    smtp: SmtpServer
    gateway: SmsGatewayServer
    producer: Celery
    email_worker: ServiceProcess
    sms_worker: ServiceProcess
    env: dict[str, str]
    logs: Path


@pytest.fixture(scope="module")
def notifier(stack: Stack) -> Iterator[Notifier]:
    smtp = SmtpServer(smtputf8=True).start()
    gateway = SmsGatewayServer().start()
    env = stack.env(
        BOXOFFICE_SMTP_HOST="127.0.0.1",
        BOXOFFICE_SMTP_PORT=str(smtp.port),
        BOXOFFICE_NOTIFIER_RETRY_BACKOFF_SECONDS="0.2",
        BOXOFFICE_NOTIFIER_RETRY_BACKOFF_MAX_SECONDS="1",
        BOXOFFICE_REPORT_RECIPIENTS=OPERATORS,
        BOXOFFICE_REMINDER_WINDOW_SECONDS="7200",
        **gateway.env(),
    )
    logs = stack.var / "notifier-logs"
    email_worker = ServiceProcess(
        "notifier-email", "boxoffice_notifier.main", env, logs, ("email",)
    ).start()
    sms_worker = ServiceProcess(
        "notifier-sms", "boxoffice_notifier.main", env, logs, ("sms",)
    ).start()
    relay = ServiceProcess("relay", "boxoffice_booking.relay", env, logs).start()
    producer = create_celery_app("test-producer", get_settings())
    try:
        email_worker.wait_for_log("ready.", timeout=120)
        sms_worker.wait_for_log("ready.", timeout=120)
        notifier = Notifier(smtp, gateway, producer, email_worker, sms_worker, env, logs)
        yield notifier
    finally:
        for process in (relay, email_worker, notifier.sms_worker):
            process.stop()
        smtp.stop()
        gateway.stop()


def emails_to(notifier: Notifier, address: str) -> list[EmailMessage]:
    found = []
    for message in notifier.smtp.messages():
        if address in str(message["To"]):
            parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
            assert isinstance(parsed, EmailMessage)
            found.append(parsed)
    return found


def sms_to(notifier: Notifier, phone: str) -> list[SmsRequest]:
    return [m for m in notifier.gateway.messages() if m.to == phone]


def deliveries(event_id: uuid.UUID) -> dict[str, Delivery]:
    with session_scope() as session:
        rows = session.scalars(select(Delivery).where(Delivery.event_id == event_id)).all()
        return {row.channel: row for row in rows}


def confirmed_event(booking_id: uuid.UUID) -> OutboxEvent:
    with session_scope() as session:
        return session.scalars(
            select(OutboxEvent).where(
                OutboxEvent.aggregate_id == booking_id,
                OutboxEvent.event_type == "booking.confirmed",
            )
        ).one()


def unique_customer() -> tuple[str, str]:
    n = uuid.uuid4().int
    return f"c{n % 10**8}@example.com", f"+9198{n % 10**8:08d}"


def settle() -> None:
    """Give a duplicate every chance to show up before counting."""
    threading.Event().wait(2)


def test_confirmation_sent_three_times_is_one_email_and_one_sms(notifier: Notifier) -> None:
    email, phone = unique_customer()
    showtime = make_showtime(film="Pather Panchali")
    booking_id = make_booking(showtime, ["B4", "B5"], email, phone)
    event = confirmed_event(booking_id)  # the relay publishes it once
    for _ in range(2):  # and it arrives twice more, as a redelivery would
        publish_event(notifier.producer, event.event_type, event.payload)

    wait_until(lambda: emails_to(notifier, email) and sms_to(notifier, phone), 30, "email and SMS")
    settle()
    [message] = emails_to(notifier, email)
    [sms] = sms_to(notifier, phone)

    assert message["X-Boxoffice-Event-Id"] == str(event.event_id)
    assert "confirmed" in message["Subject"]
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    assert "Pather Panchali" in text.get_content()
    assert "B4, B5" in html.get_content()
    assert "INR 400.00" in text.get_content()
    [ics] = list(message.iter_attachments())
    assert ics.get_content_type() == "text/calendar"
    assert "BEGIN:VEVENT" in ics.get_content()

    assert "Pather Panchali" in sms.body
    assert sms.idempotency_key == f"{event.event_id}:sms"
    sent = deliveries(event.event_id)
    assert {channel: row.status for channel, row in sent.items()} == {
        "email": "sent",
        "sms": "sent",
    }
    assert sent["sms"].provider_message_id is not None


def test_smtp_451_twice_then_accepted_is_one_email_after_two_retries(notifier: Notifier) -> None:
    email, phone = unique_customer()
    refused_before = notifier.smtp.refused
    notifier.smtp.refuse_next("451 4.3.0 Mailbox busy, try later", "451 4.3.0 Still busy")
    booking_id = make_booking(make_showtime(), ["C1"], email, phone)
    event = confirmed_event(booking_id)

    wait_until(lambda: emails_to(notifier, email), 60, "the email after two refusals")
    settle()
    assert len(emails_to(notifier, email)) == 1
    assert notifier.smtp.refused - refused_before == 2
    delivery = deliveries(event.event_id)["email"]
    assert (delivery.status, delivery.attempts, delivery.error) == ("sent", 3, None)
    # Celery scheduled the two retries (the worker logs each one) and the task status has them.
    assert notifier.email_worker.log().count("451 4.3.0") >= 2
    email_route = next(r for r in EVENT_ROUTES["booking.confirmed"] if r.queue == QUEUE_EMAIL)
    task_id = task_id_for(event.event_id, email_route)

    def task_row() -> TaskRecord | None:
        with session_scope() as session:
            return session.get(TaskRecord, task_id)

    wait_until(
        lambda: (row := task_row()) is not None and row.status is TaskStatus.SUCCESS,
        30,
        "the task status to say SUCCESS",
    )
    row = task_row()
    assert row is not None
    assert row.retries == 2


def test_smtp_550_is_recorded_as_failed_and_not_retried(notifier: Notifier) -> None:
    email, phone = unique_customer()
    notifier.smtp.refuse_next("550 5.1.1 No such user here")
    booking_id = make_booking(make_showtime(), ["C2"], email, phone)
    event = confirmed_event(booking_id)

    wait_until(
        lambda: deliveries(event.event_id).get("email", Delivery()).status == "failed",
        30,
        "the permanent failure to be recorded",
    )
    settle()
    delivery = deliveries(event.event_id)["email"]
    assert delivery.attempts == 1
    assert delivery.error is not None
    assert "550" in delivery.error
    assert emails_to(notifier, email) == []
    # Not dropped: the message waits in the notifier's dead-letter queue with the reason.
    letter = dead_letter_of(task_id_for(event.event_id, EVENT_ROUTES["booking.confirmed"][0]))
    assert letter is not None
    assert letter.reason.startswith("permanent error: PermanentDeliveryError")
    assert "550" in letter.reason
    # The other channel is independent of the email's fate.
    wait_until(lambda: sms_to(notifier, phone), 30, "the SMS")


def dead_letter_of(task_id: str) -> DeadLetter | None:
    with session_scope() as session:
        return session.scalars(select(DeadLetter).where(DeadLetter.task_id == task_id)).first()


def test_an_internationalised_address_gets_its_confirmation(notifier: Notifier) -> None:
    """`josé@exämple.com`: the mailbox name over SMTPUTF8, the domain in IDNA form."""
    _, phone = unique_customer()
    local = f"josé.{uuid.uuid4().hex[:6]}"
    booking_id = make_booking(make_showtime(), ["C3"], f"{local}@exämple.com", phone)
    event = confirmed_event(booking_id)
    wanted = f"{local}@xn--exmple-cua.com"

    wait_until(
        lambda: any(wanted in rcpt for _, rcpt in notifier.smtp.envelopes()), 30, "the email"
    )
    [(options, _)] = [e for e in notifier.smtp.envelopes() if wanted in e[1]]
    assert "SMTPUTF8" in options
    # The SMTP server has the message before the notifier's transaction that records it commits.
    wait_until(
        lambda: deliveries(event.event_id)["email"].status == "sent", 30, "the delivery record"
    )


def test_a_customer_who_opted_out_gets_email_but_no_sms(notifier: Notifier) -> None:
    email, phone = unique_customer()
    booking_id = make_booking(make_showtime(), ["C3"], email, phone, sms_opt_out=True)
    event = confirmed_event(booking_id)
    wait_until(lambda: len(deliveries(event.event_id)) == 2, 30, "both channels to be decided")
    settle()
    rows = deliveries(event.event_id)
    assert rows["email"].status == "sent"
    assert (rows["sms"].status, rows["sms"].error) == ("skipped", "customer opted out of SMS")
    assert len(emails_to(notifier, email)) == 1
    assert sms_to(notifier, phone) == []


def test_sms_gateway_errors_are_retried_until_it_accepts(notifier: Notifier) -> None:
    email, phone = unique_customer()
    notifier.gateway.fail_next(503, 429)
    booking_id = make_booking(make_showtime(), ["C4"], email, phone)
    event = confirmed_event(booking_id)
    wait_until(lambda: sms_to(notifier, phone), 60, "the SMS after two gateway errors")
    settle()
    assert len(sms_to(notifier, phone)) == 1
    assert deliveries(event.event_id)["sms"].attempts == 3


def test_a_late_payment_refund_is_told_by_email_and_sms(notifier: Notifier) -> None:
    email, phone = unique_customer()
    booking_id = make_booking(make_showtime(), ["C5"], email, phone, confirm=False)
    envelope = build_envelope(
        "booking.refunded",
        booking_id,
        events_pb2.BookingRefunded(
            booking_id=str(booking_id),
            seats=["C5"],
            payment_id=str(uuid.uuid4()),
            refunded_minor=20000,
            currency="INR",
            reason="seats_taken",
        ),
    )
    publish_event(notifier.producer, envelope.event_type, to_json(envelope))
    wait_until(lambda: emails_to(notifier, email) and sms_to(notifier, phone), 30, "both")
    [message] = emails_to(notifier, email)
    assert "refunded" in str(message["Subject"])
    text = message.get_body(("plain",))
    assert text is not None
    assert "after your hold" in text.get_content()
    assert "INR 200.00" in text.get_content()
    [sms] = sms_to(notifier, phone)
    assert "INR 200.00 refunded" in sms.body


def test_each_booking_is_reminded_once_per_channel(notifier: Notifier) -> None:
    email, phone = unique_customer()
    soon = make_showtime(starts_in=timedelta(minutes=45), film="Charulata")
    booking_id = make_booking(soon, ["D1"], email, phone)
    later_email, later_phone = unique_customer()
    make_booking(make_showtime(starts_in=timedelta(hours=6)), ["D1"], later_email, later_phone)

    for _ in range(3):  # the schedule ticking more often than reminders are due
        notifier.producer.send_task(TASK_SEND_SHOWTIME_REMINDERS, queue=QUEUE_EMAIL)

    def reminders() -> list[EmailMessage]:
        return [m for m in emails_to(notifier, email) if "Reminder" in str(m["Subject"])]

    wait_until(lambda: reminders() and len(sms_to(notifier, phone)) >= 2, 30, "the reminders")
    settle()
    assert len(reminders()) == 1
    # One confirmation and one reminder; the two queues race, so either may arrive first.
    bodies = [s.body for s in sms_to(notifier, phone)]
    assert len(bodies) == 2
    assert sum(b.startswith("Boxoffice: reminder") for b in bodies) == 1
    assert sum(b.startswith("Boxoffice: booking") for b in bodies) == 1
    sent = deliveries(reminder_event_id(booking_id))
    assert {channel: row.status for channel, row in sent.items()} == {
        "email": "sent",
        "sms": "sent",
    }
    assert [m for m in emails_to(notifier, later_email) if "Reminder" in str(m["Subject"])] == []


def test_daily_report_is_one_email_to_operators_with_every_venue(notifier: Notifier) -> None:
    venues = [f"Report Hall {uuid.uuid4().hex[:6]}" for _ in range(3)]
    for n, venue in enumerate(venues):
        showtime = make_showtime(venue_name=venue)
        for seat in range(n + 1):
            make_booking(showtime, [f"A{seat + 2}"], *unique_customer())
    day = datetime.now(UTC).date().isoformat()

    for _ in range(2):  # asked twice (a replayed schedule tick): emailed once
        notifier.producer.send_task(TASK_SEND_DAILY_REPORT, args=[day], queue=QUEUE_EMAIL)

    def reports() -> list[Message]:
        return [m for m in notifier.smtp.messages() if day in str(m["Subject"])]

    wait_until(reports, 60, "the daily report")
    settle()
    [report] = reports()
    assert report["To"] == OPERATORS.replace(",", ", ")
    parsed = message_from_bytes(report.as_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    body = parsed.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    for n, venue in enumerate(venues):
        section = text.split(venue, 1)[1]
        assert f"Bookings confirmed: {n + 1}" in section.split("\n\n", 1)[0]
    assert "All venues" in text


def test_each_channel_has_its_own_pool_and_one_down_does_not_hold_up_the_other(
    notifier: Notifier,
) -> None:
    notifier.sms_worker.stop()
    email, phone = unique_customer()
    booking_id = make_booking(make_showtime(), ["D6"], email, phone)
    event = confirmed_event(booking_id)
    wait_until(lambda: emails_to(notifier, email), 30, "the email while SMS workers are down")
    assert sms_to(notifier, phone) == []

    notifier.sms_worker = ServiceProcess(
        "notifier-sms-2", "boxoffice_notifier.main", notifier.env, notifier.logs, ("sms",)
    ).start()
    wait_until(lambda: sms_to(notifier, phone), 120, "the SMS once an SMS worker is back")
    settle()
    assert len(sms_to(notifier, phone)) == 1
    assert deliveries(event.event_id)["sms"].status == "sent"
