"""The periodic schedule, built from settings."""

from __future__ import annotations

from typing import Any

from boxoffice_messaging.routes import (
    QUEUE_EMAIL,
    QUEUE_REAPER,
    TASK_EXPIRE_DUE_HOLDS,
    TASK_SEND_DAILY_REPORT,
    TASK_SEND_SHOWTIME_REMINDERS,
)
from boxoffice_settings import Settings
from celery.schedules import crontab


def build_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    interval = settings.reaper_sweep_interval_seconds
    return {
        "expire-due-holds": {
            "task": TASK_EXPIRE_DUE_HOLDS,
            "schedule": interval,
            # A sweep that waited longer than a few intervals is stale: the next one covers it.
            "options": {"queue": QUEUE_REAPER, "expires": max(5.0, interval * 5)},
        },
        "send-showtime-reminders": {
            "task": TASK_SEND_SHOWTIME_REMINDERS,
            "schedule": settings.reminder_interval_seconds,
            # A missed tick is harmless: the next one reminds whoever is still due.
            "options": {"queue": QUEUE_EMAIL, "expires": settings.reminder_interval_seconds},
        },
        "send-daily-report": {
            "task": TASK_SEND_DAILY_REPORT,
            # Venue-agnostic: yesterday in UTC, shortly after midnight UTC.
            "schedule": crontab(minute="5", hour="0"),
            "options": {"queue": QUEUE_EMAIL},
        },
    }
