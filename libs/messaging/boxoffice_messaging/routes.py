"""Queue names and which tasks each event is published to.

Services never import each other's code, so producers address tasks by name. The routes of an
event are derived from its row in `boxoffice_contracts.events` (one task per channel, on that
channel's queue); the constants below name the same tasks for code that sends them directly.
"""

from __future__ import annotations

from typing import NamedTuple

from boxoffice_contracts.events import EMAIL, EVENT_TYPES, SMS

QUEUE_EMAIL = "notifier.email"
QUEUE_SMS = "notifier.sms"
QUEUE_REAPER = "reaper"

TASK_SEND_BOOKING_CONFIRMATION = "notifier.send_booking_confirmation"
TASK_SEND_HOLD_EXPIRED = "notifier.send_hold_expired"
TASK_SEND_BOOKING_CANCELLED = "notifier.send_booking_cancelled"
TASK_SEND_BOOKING_CONFIRMATION_SMS = "notifier.send_booking_confirmation_sms"
TASK_SEND_BOOKING_REFUNDED = "notifier.send_booking_refunded"
TASK_SEND_BOOKING_REFUNDED_SMS = "notifier.send_booking_refunded_sms"
TASK_SEND_SHOWTIME_REMINDER = "notifier.send_showtime_reminder"
TASK_SEND_SHOWTIME_REMINDER_SMS = "notifier.send_showtime_reminder_sms"
TASK_EXPIRE_DUE_HOLDS = "reaper.expire_due_holds"

# Periodic jobs the scheduler sends (names fixed here so producer and consumer agree).
TASK_SEND_SHOWTIME_REMINDERS = "notifier.send_showtime_reminders"
TASK_SEND_DAILY_REPORT = "notifier.send_daily_report"
# The daily report's chord: one figures task per venue, then one email.
TASK_COMPUTE_VENUE_REPORT = "notifier.compute_venue_report"
TASK_EMAIL_DAILY_REPORT = "notifier.email_daily_report"
TASK_PURGE_RETENTION = "reaper.purge_retention"
TASK_PURGE_EXPIRED_KEYS = "reaper.purge_expired_keys"
TASK_RECONCILE_REFUNDS = "reaper.reconcile_refunds"


class Route(NamedTuple):
    task: str
    queue: str


CHANNEL_QUEUES: dict[str, str] = {EMAIL: QUEUE_EMAIL, SMS: QUEUE_SMS}

# An event with several routes is published as one Celery group: its channels run in parallel,
# each on its own queue and worker pool.
EVENT_ROUTES: dict[str, tuple[Route, ...]] = {
    event.name: tuple(
        Route(event.task_name(channel), CHANNEL_QUEUES[channel]) for channel in event.channels
    )
    for event in EVENT_TYPES
}
