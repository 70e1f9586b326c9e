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
TASK_SEND_BOOKING_REFUNDED = "notifier.send_booking_refunded"
TASK_EXPIRE_DUE_HOLDS = "reaper.expire_due_holds"

# Periodic jobs the scheduler sends (names fixed here so producer and consumer agree).
TASK_SEND_SHOWTIME_REMINDERS = "notifier.send_showtime_reminders"
TASK_SEND_DAILY_REPORT = "notifier.send_daily_report"
TASK_PURGE_RETENTION = "reaper.purge_retention"
TASK_PURGE_EXPIRED_KEYS = "reaper.purge_expired_keys"


class Route(NamedTuple):
    task: str
    queue: str


EVENT_ROUTES: dict[str, tuple[Route, ...]] = {
    "hold.created": (),
    "booking.confirmed": (Route(TASK_SEND_BOOKING_CONFIRMATION, QUEUE_EMAIL),),
    "booking.expired": (Route(TASK_SEND_HOLD_EXPIRED, QUEUE_EMAIL),),
    "booking.cancelled": (Route(TASK_SEND_BOOKING_CANCELLED, QUEUE_EMAIL),),
    "booking.refunded": (Route(TASK_SEND_BOOKING_REFUNDED, QUEUE_EMAIL),),
}
