"""Reaper tasks: thin wrappers that open a transaction per batch."""

from __future__ import annotations

import logging
import time

from boxoffice_db.engine import session_scope
from boxoffice_messaging.routes import TASK_EXPIRE_DUE_HOLDS
from boxoffice_settings import get_settings
from celery import Celery

from boxoffice_reaper.expiry import expire_batch

log = logging.getLogger(__name__)

# A sweep stops taking new batches after this long, so one slow sweep cannot run forever.
SWEEP_BUDGET_SECONDS = 20.0


def sweep_due_holds() -> int:
    """Expire due holds batch by batch, one transaction each, until none is left."""
    settings = get_settings()
    total = 0
    deadline = time.monotonic() + SWEEP_BUDGET_SECONDS
    while time.monotonic() < deadline:
        with session_scope() as session:
            expired = expire_batch(session, settings.reaper_batch_size)
        total += expired
        if expired < settings.reaper_batch_size:
            break
    if total:
        log.info("expired holds", extra={"count": total})
    return total


def register_tasks(app: Celery) -> None:
    app.task(name=TASK_EXPIRE_DUE_HOLDS, ignore_result=True)(sweep_due_holds)
