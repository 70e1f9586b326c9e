"""The periodic schedule, built from settings."""

from __future__ import annotations

from typing import Any

from boxoffice_messaging.routes import QUEUE_REAPER, TASK_EXPIRE_DUE_HOLDS
from boxoffice_settings import Settings


def build_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    interval = settings.reaper_sweep_interval_seconds
    return {
        "expire-due-holds": {
            "task": TASK_EXPIRE_DUE_HOLDS,
            "schedule": interval,
            # A sweep that waited longer than a few intervals is stale: the next one covers it.
            "options": {"queue": QUEUE_REAPER, "expires": max(5.0, interval * 5)},
        },
    }
