"""Reaper tasks: thin wrappers that open a transaction per batch."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from functools import lru_cache

from boxoffice_db.engine import session_scope
from boxoffice_messaging.routes import (
    TASK_EXPIRE_DUE_HOLDS,
    TASK_PURGE_EXPIRED_KEYS,
    TASK_PURGE_RETENTION,
)
from boxoffice_settings import get_settings
from celery import Celery

from boxoffice_reaper import payment_checks, retention
from boxoffice_reaper.expiry import expire_batch

log = logging.getLogger(__name__)

# A sweep stops taking new batches after this long, so one slow sweep cannot run forever.
SWEEP_BUDGET_SECONDS = 20.0


def fetch_payment_status(provider: str, reference: str) -> str:
    """Ask `provider` about the order `reference`; its PaymentStatus value."""
    # The provider library (boxoffice_payments) is not on this branch yet: until it is, an
    # in-progress payment is treated as unanswered, so its hold expires after the grace period.
    raise LookupError(f"no client for payment provider {provider!r}")


@lru_cache(maxsize=1)
def _throttle(seconds: float) -> payment_checks.RecheckThrottle:
    """One throttle per process, so sweeps on every thread share what was asked when."""
    return payment_checks.RecheckThrottle(seconds)


def sweep_due_holds() -> int:
    """Expire due holds batch by batch, one transaction each, until none is left.

    Holds with a payment in progress are checked with the provider afterwards.
    """
    settings = get_settings()
    total = 0
    deadline = time.monotonic() + SWEEP_BUDGET_SECONDS
    while time.monotonic() < deadline:
        with session_scope() as session:
            expired = expire_batch(session, settings.reaper_batch_size)
        total += expired
        if expired < settings.reaper_batch_size:
            break
    total += payment_checks.check_paying_holds(
        fetch_payment_status,
        _throttle(settings.reaper_payment_recheck_seconds),
        timedelta(seconds=settings.reaper_payment_grace_seconds),
    )
    if total:
        log.info("expired holds", extra={"count": total})
    return total


def purge_retention() -> dict[str, int]:
    """Weekly: anonymise old finished bookings, delete old outbox, delivery and task rows."""
    return retention.purge_retention(get_settings())


def purge_expired_keys() -> dict[str, int]:
    """Hourly: delete expired idempotency keys and long-revoked API keys."""
    return retention.purge_expired_keys(get_settings())


def register_tasks(app: Celery) -> None:
    app.task(name=TASK_EXPIRE_DUE_HOLDS, ignore_result=True)(sweep_due_holds)
    app.task(name=TASK_PURGE_RETENTION, ignore_result=True)(purge_retention)
    app.task(name=TASK_PURGE_EXPIRED_KEYS, ignore_result=True)(purge_expired_keys)
