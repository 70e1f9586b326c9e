"""Queue names and which tasks each event is published to.

Services never import each other's code, so producers address tasks by name.
"""

from __future__ import annotations

from typing import NamedTuple

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


class Route(NamedTuple):
    task: str
    queue: str


# An event with several routes is published as one Celery group: its channels run in parallel,
# each on its own queue and worker pool.
EVENT_ROUTES: dict[str, tuple[Route, ...]] = {
    "hold.created": (),
    "booking.confirmed": (
        Route(TASK_SEND_BOOKING_CONFIRMATION, QUEUE_EMAIL),
        Route(TASK_SEND_BOOKING_CONFIRMATION_SMS, QUEUE_SMS),
    ),
    "booking.expired": (Route(TASK_SEND_HOLD_EXPIRED, QUEUE_EMAIL),),
    "booking.cancelled": (Route(TASK_SEND_BOOKING_CANCELLED, QUEUE_EMAIL),),
    "booking.refunded": (
        Route(TASK_SEND_BOOKING_REFUNDED, QUEUE_EMAIL),
        Route(TASK_SEND_BOOKING_REFUNDED_SMS, QUEUE_SMS),
    ),
    "notifier.showtime_reminder_due": (
        Route(TASK_SEND_SHOWTIME_REMINDER, QUEUE_EMAIL),
        Route(TASK_SEND_SHOWTIME_REMINDER_SMS, QUEUE_SMS),
    ),
}
