"""Reaper tasks: thin wrappers that open a transaction per batch."""

from __future__ import annotations

import logging
import time

from boxoffice_db.engine import session_scope
from boxoffice_messaging.reliable import reliable_task
from boxoffice_messaging.retry import RetryPolicy
from boxoffice_messaging.routes import TASK_EXPIRE_DUE_HOLDS
from boxoffice_messaging.task_status import report_progress
from boxoffice_settings import get_settings
from celery import Celery

from boxoffice_reaper.expiry import expire_batch

log = logging.getLogger(__name__)

# A sweep stops taking new batches after this long, so one slow sweep cannot run forever.
SWEEP_BUDGET_SECONDS = 20.0
SWEEP_RETRIES = RetryPolicy(max_retries=0)


def sweep_due_holds() -> int:
    """Expire due holds batch by batch, one transaction each, until none is left."""
    settings = get_settings()
    total = 0
    deadline = time.monotonic() + SWEEP_BUDGET_SECONDS
    while time.monotonic() < deadline:
        with session_scope() as session:
            expired = expire_batch(session, settings.reaper_batch_size)
        total += expired
        if total:
            report_progress(total, None, f"expired {total} holds")
        if expired < settings.reaper_batch_size:
            break
    if total:
        log.info("expired holds", extra={"count": total})
    return total


def register_tasks(app: Celery) -> None:
    # A failed sweep is neither retried nor dead-lettered: the next scheduled sweep (a
    # second later) redoes it, and retries would pile sweeps up during a database outage.
    reliable_task(
        app, TASK_EXPIRE_DUE_HOLDS, service="reaper", retry_policy=SWEEP_RETRIES, dead_letter=False
    )(sweep_due_holds)
