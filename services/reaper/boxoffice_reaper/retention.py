"""Data retention: forget customers' personal data and old bookkeeping rows after a while.

Each step works in small batches (`retention_repository`), one short transaction each, with
SKIP LOCKED, so it never holds locks long, never blocks the booking path, and replicas running
it at once share the work. Tables that other parts of the system add later (task status,
idempotency keys) are cleaned only where they exist, so the reaper runs on any schema version.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from boxoffice_db.engine import session_scope
from boxoffice_settings import Settings
from prometheus_client import Counter
from sqlalchemy.orm import Session

from boxoffice_reaper.retention_repository import (
    anonymise_bookings,
    delete_expired_idempotency_keys,
    delete_old_deliveries,
    delete_old_outbox,
    delete_old_tasks,
    delete_old_webhook_events,
    delete_revoked_api_keys,
    table_exists,
)

log = logging.getLogger(__name__)

RETENTION_ROWS = Counter(
    "boxoffice_retention_rows_total",
    "Rows anonymised or deleted by data retention",
    ["table", "action"],
)

Batch = Callable[[Session, datetime, int], int]


@dataclass(frozen=True)
class Step:
    table: str
    action: str
    batch: Batch
    keep_days: float


def run_step(step: Step, batch_size: int, now: datetime | None = None) -> int:
    """Run one step batch by batch, a transaction each, until a batch comes back short."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=step.keep_days)
    total = 0
    while True:
        with session_scope() as session:
            done = step.batch(session, cutoff, batch_size)
        total += done
        RETENTION_ROWS.labels(step.table, step.action).inc(done)
        if done < batch_size:
            return total


def run_steps(steps: list[Step], batch_size: int, now: datetime | None = None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for step in steps:
        if not table_exists(step.table):
            log.info("retention: no %s table here; skipped", step.table)
            continue
        counts[f"{step.table}.{step.action}"] = run_step(step, batch_size, now)
    if any(counts.values()):
        log.info("retention done", extra={"counts": counts})
    return counts


def retention_steps(settings: Settings) -> list[Step]:
    """The weekly clean-up: personal data, outbox, deliveries, task status."""
    return [
        Step("bookings", "anonymised", anonymise_bookings, settings.retention_personal_data_days),
        Step("outbox", "deleted", delete_old_outbox, settings.retention_outbox_days),
        Step("deliveries", "deleted", delete_old_deliveries, settings.retention_deliveries_days),
        Step("tasks", "deleted", delete_old_tasks, settings.retention_tasks_days),
        Step(
            "payment_webhook_events",
            "deleted",
            delete_old_webhook_events,
            settings.retention_webhook_events_days,
        ),
    ]


def expired_key_steps(settings: Settings) -> list[Step]:
    """The hourly clean-up: revoked API keys past their retention, expired idempotency keys."""
    return [
        # Expired at `expires_at` itself: nothing extra to keep.
        Step("idempotency_keys", "deleted", delete_expired_idempotency_keys, 0),
        Step(
            "api_keys",
            "deleted",
            delete_revoked_api_keys,
            settings.retention_revoked_api_keys_days,
        ),
    ]


def purge_retention(settings: Settings, now: datetime | None = None) -> dict[str, int]:
    """Anonymise and delete whatever the retention settings say is old enough."""
    return run_steps(retention_steps(settings), settings.retention_batch_size, now)


def purge_expired_keys(settings: Settings, now: datetime | None = None) -> dict[str, int]:
    """Delete expired idempotency keys and long-revoked API keys."""
    return run_steps(expired_key_steps(settings), settings.retention_batch_size, now)
