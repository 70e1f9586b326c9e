"""Notifier tasks: decode the message, call a service function; ReliableTask retries or
dead-letters whatever fails.

Every task is a `ReliableTask` with the notifier's `RetryPolicy`: a transient failure (an
SMTP 4xx, a gateway 429, the database away) is retried with backoff; a permanent one (a
malformed message, an SMTP 5xx) and any failure out of retries (a bug, a reply nobody
expected) is dead-lettered with its reason, and its delivery recorded as failed. Nothing is
acknowledged and forgotten. The names on the decorators are the contract with the producers:
`test_notifier_tasks_are_the_ones_the_event_table_derives` checks them against
`boxoffice_contracts.events`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from boxoffice_contracts.envelope import MalformedMessage, parse_envelope
from boxoffice_contracts.events import NOTIFICATION_TASKS
from boxoffice_db.engine import session_scope
from boxoffice_messaging.celery_app import create_celery_app
from boxoffice_messaging.reliable import ReliableTask
from boxoffice_messaging.retry import RetryPolicy
from boxoffice_messaging.routes import QUEUE_EMAIL
from boxoffice_settings import Settings, get_settings
from celery import Celery, chord

from boxoffice_notifier.deliveries import finish
from boxoffice_notifier.notifications import NOTIFICATIONS, delivery_key, notify
from boxoffice_notifier.reminders import claim_due_reminders
from boxoffice_notifier.report_email import email_report, report_key
from boxoffice_notifier.reports import all_venue_ids, venue_figures

log = logging.getLogger(__name__)


def retry_policy(settings: Settings) -> RetryPolicy:
    """The notifier's retries (BOXOFFICE_NOTIFIER_RETRY_*), checked against the visibility
    timeout by the settings."""
    return RetryPolicy(
        max_retries=settings.notifier_max_retries,
        base_seconds=settings.notifier_retry_backoff_seconds,
        cap_seconds=settings.notifier_retry_backoff_max_seconds,
    )


def create_app(settings: Settings) -> Celery:
    app = create_celery_app("boxoffice-notifier", settings)
    # The daily report's chord hands its parts' results to the callback through Redis;
    # those results expire after a day (task status proper lives in PostgreSQL).
    app.conf.update(result_backend=settings.redis_url, result_expires=86400)
    return app


settings = get_settings()
app = create_app(settings)


class NotificationTask(ReliableTask):
    """A customer notification: given up on, its delivery is recorded as failed."""

    def on_give_up(self, exc: Exception, reason: str, args: Sequence[Any]) -> None:
        _, channel = NOTIFICATION_TASKS[self.name]
        try:
            key = delivery_key(parse_envelope(args[0] if args else None), channel)
        except (MalformedMessage, ValueError):
            return  # no delivery to record: the dead letter alone says what happened
        finish(key, "failed", reason, count_attempt=False)
        NOTIFICATIONS.labels(channel, key.kind, "failed").inc()


class ReportTask(ReliableTask):
    """The operators' daily report email: given up on, its delivery is recorded as failed."""

    def on_give_up(self, exc: Exception, reason: str, args: Sequence[Any]) -> None:
        day = args[1] if len(args) > 1 else None
        if isinstance(day, str):
            finish(report_key(date.fromisoformat(day)), "failed", reason, count_attempt=False)


# Options of every task that handles a message worth keeping.
RELIABLE: dict[str, Any] = {
    "bind": True,
    "service": "notifier",
    "retry_policy": retry_policy(settings),
}
# Periodic jobs: the next run redoes the work, so a failure is recorded, not retried.
PERIODIC: dict[str, Any] = {
    "base": ReliableTask,
    "service": "notifier",
    "retry_policy": RetryPolicy(max_retries=0),
    "dead_letter": False,
}


def send_notification(task: ReliableTask, message: object) -> str:
    """Tell the customer what the event in `message` means, on the task's channel, once."""
    envelope = parse_envelope(message)
    event, channel = NOTIFICATION_TASKS[task.name]
    if envelope.event_type != event.name:
        raise MalformedMessage(f"{task.name} got a {envelope.event_type!r} event")
    return notify(envelope, channel).value


@app.task(name="notifier.send_booking_confirmation", base=NotificationTask, **RELIABLE)
def send_booking_confirmation(self: ReliableTask, message: object) -> str:
    return send_notification(self, message)


@app.task(name="notifier.send_booking_confirmation_sms", base=NotificationTask, **RELIABLE)
def send_booking_confirmation_sms(self: ReliableTask, message: object) -> str:
    return send_notification(self, message)


@app.task(name="notifier.send_hold_expired", base=NotificationTask, **RELIABLE)
def send_hold_expired(self: ReliableTask, message: object) -> str:
    return send_notification(self, message)


@app.task(name="notifier.send_booking_cancelled", base=NotificationTask, **RELIABLE)
def send_booking_cancelled(self: ReliableTask, message: object) -> str:
    return send_notification(self, message)


@app.task(name="notifier.send_booking_refunded", base=NotificationTask, **RELIABLE)
def send_booking_refunded(self: ReliableTask, message: object) -> str:
    return send_notification(self, message)


@app.task(name="notifier.send_booking_refunded_sms", base=NotificationTask, **RELIABLE)
def send_booking_refunded_sms(self: ReliableTask, message: object) -> str:
    return send_notification(self, message)


@app.task(name="notifier.send_showtime_reminder", base=NotificationTask, **RELIABLE)
def send_showtime_reminder(self: ReliableTask, message: object) -> str:
    return send_notification(self, message)


@app.task(name="notifier.send_showtime_reminder_sms", base=NotificationTask, **RELIABLE)
def send_showtime_reminder_sms(self: ReliableTask, message: object) -> str:
    return send_notification(self, message)


@app.task(name="notifier.send_showtime_reminders", **PERIODIC)
def send_showtime_reminders() -> int:
    """Announce reminders for bookings whose showtime starts within the window."""
    window = timedelta(seconds=get_settings().reminder_window_seconds)
    with session_scope() as session:
        claimed = claim_due_reminders(session, window)
    log.info("reminders claimed", extra={"count": claimed})
    return claimed


# Chord parts keep their results (in Redis, expiring): the callback receives them. A part
# that fails leaves the chord waiting, so database trouble is retried like any message.
@app.task(name="notifier.compute_venue_report", base=ReliableTask, ignore_result=False, **RELIABLE)
def compute_venue_report(self: ReliableTask, venue_id: str, day: str) -> dict[str, Any]:
    with session_scope() as session:
        return venue_figures(session, uuid.UUID(venue_id), date.fromisoformat(day)).to_json()


@app.task(name="notifier.email_daily_report", base=ReportTask, ignore_result=False, **RELIABLE)
def email_daily_report(self: ReliableTask, parts: list[dict[str, Any]], day: str) -> str:
    return email_report(date.fromisoformat(day), parts).value


@app.task(name="notifier.send_daily_report", **PERIODIC)
def send_daily_report(day: str | None = None) -> int:
    """Report on `day` (default: yesterday, UTC): a chord over venues, then one email."""
    report_day = date.fromisoformat(day) if day else datetime.now(UTC).date() - timedelta(1)
    with session_scope() as session:
        venues = all_venue_ids(session)
    callback = email_daily_report.s(report_day.isoformat()).set(queue=QUEUE_EMAIL)
    if not venues:
        callback.delay([])
        return 0
    chord(
        compute_venue_report.s(str(venue_id), report_day.isoformat()).set(queue=QUEUE_EMAIL)
        for venue_id in venues
    )(callback)
    log.info("daily report started", extra={"day": report_day.isoformat(), "venues": len(venues)})
    return len(venues)
