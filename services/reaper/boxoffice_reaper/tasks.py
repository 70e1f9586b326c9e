"""Reaper tasks: thin wrappers that open a transaction per batch."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from functools import lru_cache

from boxoffice_bookings import reconciliation, refunds
from boxoffice_bookings.expiry import expire_batch, seconds_until_next_expiry
from boxoffice_db.engine import session_scope
from boxoffice_messaging.reliable import reliable_task
from boxoffice_messaging.retry import RetryPolicy
from boxoffice_messaging.routes import (
    TASK_EXPIRE_DUE_HOLDS,
    TASK_PURGE_EXPIRED_KEYS,
    TASK_PURGE_RETENTION,
    TASK_RECONCILE_REFUNDS,
)
from boxoffice_payments import PaymentState, get_provider
from boxoffice_settings import get_settings
from celery import Celery

from boxoffice_reaper import retention

log = logging.getLogger(__name__)

# A sweep stops taking new batches after this long, so one slow sweep cannot run forever.
SWEEP_BUDGET_SECONDS = 20.0
# A sweep follows upcoming expiries for this share of the interval, leaving the rest of it
# so that sweeps overlap only a little and a worker thread is free again soon.
FOLLOW_FRACTION = 0.9
MIN_FOLLOW_SLEEP_SECONDS = 0.02


def fetch_payment_status(provider: str, reference: str) -> PaymentState:
    """Ask `provider` about the order `reference`."""
    return get_provider(provider).fetch_status(reference)


@lru_cache(maxsize=1)
def _throttle(seconds: float) -> reconciliation.RecheckThrottle:
    """One throttle per process, so sweeps on every thread share what was asked when."""
    return reconciliation.RecheckThrottle(seconds)


def expire_due_now(batch_size: int, deadline: float) -> int:
    """Expire every hold due now, batch by batch, one transaction each."""
    total = 0
    while time.monotonic() < deadline:
        with session_scope() as session:
            expired = expire_batch(session, batch_size)
        total += expired
        if expired < batch_size:
            break
    return total


def sweep_due_holds() -> int:
    """Expire due holds, then follow the holds falling due until the next sweep is sent.

    Sweeps come once an interval; on its own that makes the expiry lag up to a whole
    interval. So a sweep then waits for each hold that falls due before the next sweep and
    expires it as it does, which keeps the lag to a few milliseconds. Sweeps that overlap
    share the work through SKIP LOCKED. Holds with a payment in progress are checked with
    the provider at the end.
    """
    settings = get_settings()
    started = time.monotonic()
    deadline = started + SWEEP_BUDGET_SECONDS
    follow_until = started + settings.reaper_sweep_interval_seconds * FOLLOW_FRACTION
    total = expire_due_now(settings.reaper_batch_size, deadline)
    while (left := follow_until - time.monotonic()) > 0:
        with session_scope() as session:
            wait = seconds_until_next_expiry(session)
        if wait is None or wait > left:
            break
        # A due hold another sweep has locked shows as due now: poll gently, do not spin.
        time.sleep(max(MIN_FOLLOW_SLEEP_SECONDS, wait))
        total += expire_due_now(settings.reaper_batch_size, deadline)
    total += reconciliation.check_paying_holds(
        fetch_payment_status,
        _throttle(settings.reaper_payment_recheck_seconds),
        timedelta(seconds=settings.reaper_payment_grace_seconds),
    )
    if total:
        log.info("expired holds", extra={"count": total})
    return total


def reconcile_refunds() -> dict[str, int]:
    """Every minute: ask the provider again for each refund still pending; settle what it made."""
    settled, pending = refunds.reconcile_refunds(get_settings().refund_retry_after_seconds)
    if settled or pending:
        log.info("refunds reconciled", extra={"settled": settled, "pending": pending})
    return {"settled": settled, "pending": pending}


def purge_retention() -> dict[str, int]:
    """Weekly: anonymise old finished bookings, delete old outbox, delivery and task rows."""
    return retention.purge_retention(get_settings())


def purge_expired_keys() -> dict[str, int]:
    """Hourly: delete expired idempotency keys and long-revoked API keys."""
    return retention.purge_expired_keys(get_settings())


def register_tasks(app: Celery) -> None:
    # ReliableTask: status in the tasks table. A failed periodic job is neither retried nor
    # dead-lettered: its next scheduled run redoes the work.
    for name, job in (
        (TASK_EXPIRE_DUE_HOLDS, sweep_due_holds),
        (TASK_PURGE_RETENTION, purge_retention),
        (TASK_PURGE_EXPIRED_KEYS, purge_expired_keys),
        (TASK_RECONCILE_REFUNDS, reconcile_refunds),
    ):
        reliable_task(
            app, name, service="reaper", retry_policy=RetryPolicy(max_retries=0), dead_letter=False
        )(job)
