"""Notifier tasks: decode the message, call a service function, then retry or reject."""

from __future__ import annotations

import logging
import random
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from boxoffice_contracts.envelope import MalformedMessage, parse_envelope
from boxoffice_db.engine import session_scope
from boxoffice_messaging.reliable import ReliableTask
from boxoffice_messaging.routes import (
    QUEUE_EMAIL,
    TASK_COMPUTE_VENUE_REPORT,
    TASK_EMAIL_DAILY_REPORT,
    TASK_SEND_BOOKING_CANCELLED,
    TASK_SEND_BOOKING_CONFIRMATION,
    TASK_SEND_BOOKING_CONFIRMATION_SMS,
    TASK_SEND_BOOKING_REFUNDED,
    TASK_SEND_BOOKING_REFUNDED_SMS,
    TASK_SEND_DAILY_REPORT,
    TASK_SEND_HOLD_EXPIRED,
    TASK_SEND_SHOWTIME_REMINDER,
    TASK_SEND_SHOWTIME_REMINDER_SMS,
    TASK_SEND_SHOWTIME_REMINDERS,
)
from boxoffice_settings import Settings, get_settings
from celery import Celery, Task, chord
from sqlalchemy.exc import OperationalError

from boxoffice_notifier.deliveries import DeliveryKey, finish
from boxoffice_notifier.errors import TransientDeliveryError
from boxoffice_notifier.notifications import EMAIL, SMS, delivery_key, notify
from boxoffice_notifier.reminders import claim_due_reminders
from boxoffice_notifier.report_email import email_report, report_key
from boxoffice_notifier.reports import all_venue_ids, venue_figures

log = logging.getLogger(__name__)

# task name -> (the event it handles, the channel it sends on)
NOTIFICATION_TASKS: dict[str, tuple[str, str]] = {
    TASK_SEND_BOOKING_CONFIRMATION: ("booking.confirmed", EMAIL),
    TASK_SEND_BOOKING_CONFIRMATION_SMS: ("booking.confirmed", SMS),
    TASK_SEND_HOLD_EXPIRED: ("booking.expired", EMAIL),
    TASK_SEND_BOOKING_CANCELLED: ("booking.cancelled", EMAIL),
    TASK_SEND_BOOKING_REFUNDED: ("booking.refunded", EMAIL),
    TASK_SEND_BOOKING_REFUNDED_SMS: ("booking.refunded", SMS),
    TASK_SEND_SHOWTIME_REMINDER: ("notifier.showtime_reminder_due", EMAIL),
    TASK_SEND_SHOWTIME_REMINDER_SMS: ("notifier.showtime_reminder_due", SMS),
}


def retry_delay(settings: Settings, retries: int, hint: float | None = None) -> float:
    """Exponential backoff with jitter, capped (long delays belong in the database, not ETAs)."""
    ceiling = min(
        settings.notifier_retry_backoff_max_seconds,
        settings.notifier_retry_backoff_seconds * 2**retries,
    )
    delay = random.uniform(ceiling / 2, ceiling)
    if hint is not None:
        delay = max(delay, min(hint, settings.notifier_retry_backoff_max_seconds))
    return delay


def _retry_or_give_up(
    task: Task[Any, Any], exc: Exception, key: DeliveryKey | None, hint: float | None = None
) -> Exception:
    """Schedule a retry; once retries are spent, record the delivery as failed and re-raise."""
    settings = get_settings()
    if task.request.retries >= settings.notifier_max_retries:
        reason = f"gave up after {task.request.retries + 1} attempts: {exc}"
        if key is not None:
            finish(key, "failed", reason)
        if isinstance(task, ReliableTask):
            task.move_to_dead_letters(exc, reason)
        return exc
    countdown = retry_delay(settings, task.request.retries, hint)
    if isinstance(task, ReliableTask):
        # A retry that cannot be published (Redis down) must requeue, not drop, the message.
        task.retry_or_requeue(exc, countdown)
    return task.retry(exc=exc, countdown=countdown)


def register_tasks(app: Celery) -> None:
    """Bind the notifier's tasks to `app` under their contract names."""
    settings = get_settings()

    def notification_task(name: str, event_type: str, channel: str) -> None:
        # ReliableTask: malformed messages and spent retries go to the notifier's
        # dead-letter queue; status is tracked in the tasks table.
        @app.task(
            name=name,
            bind=True,
            max_retries=settings.notifier_max_retries,
            base=ReliableTask,
            service="notifier",
        )
        def task(self: ReliableTask, message: object) -> str:
            try:
                envelope = parse_envelope(message)
                if envelope.event_type != event_type:
                    raise MalformedMessage(f"{name} got a {envelope.event_type!r} event")
                return notify(envelope, channel).value
            except MalformedMessage as exc:
                self.move_to_dead_letters(exc)
                raise
            except TransientDeliveryError as exc:
                raise _retry_or_give_up(
                    self, exc, delivery_key(envelope, channel), exc.retry_after
                ) from exc
            except OperationalError as exc:  # the database is away: wait for it
                raise _retry_or_give_up(self, exc, None) from exc

    for name, (event_type, channel) in NOTIFICATION_TASKS.items():
        notification_task(name, event_type, channel)

    @app.task(name=TASK_SEND_SHOWTIME_REMINDERS)
    def send_showtime_reminders() -> int:
        """Announce reminders for bookings whose showtime starts within the window."""
        window = timedelta(seconds=get_settings().reminder_window_seconds)
        with session_scope() as session:
            claimed = claim_due_reminders(session, window)
        log.info("reminders claimed", extra={"count": claimed})
        return claimed

    # Chord parts keep their results (in Redis, expiring): the callback receives them.
    # A part that fails would leave the chord waiting forever: database trouble is retried.
    @app.task(
        name=TASK_COMPUTE_VENUE_REPORT,
        ignore_result=False,
        autoretry_for=(OperationalError,),
        retry_backoff=True,
        retry_backoff_max=300,
        max_retries=settings.notifier_max_retries,
    )
    def compute_venue_report(venue_id: str, day: str) -> dict[str, Any]:
        with session_scope() as session:
            return venue_figures(session, uuid.UUID(venue_id), date.fromisoformat(day)).to_json()

    @app.task(name=TASK_EMAIL_DAILY_REPORT, bind=True, ignore_result=False)
    def email_daily_report(self: Task[Any, Any], parts: list[dict[str, Any]], day: str) -> str:
        report_day = date.fromisoformat(day)
        try:
            return email_report(report_day, parts).value
        except TransientDeliveryError as exc:
            raise _retry_or_give_up(self, exc, report_key(report_day), exc.retry_after) from exc

    @app.task(name=TASK_SEND_DAILY_REPORT)
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
        log.info(
            "daily report started", extra={"day": report_day.isoformat(), "venues": len(venues)}
        )
        return len(venues)
