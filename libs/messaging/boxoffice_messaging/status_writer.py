"""Task-status rows written behind the tasks, many to a transaction.

A worker records each task twice (STARTED, then SUCCESS or FAILURE); written from the task's
own thread, that was two transactions per task on the hot path, more PostgreSQL time than a
small task's own work. Here the task hands its change to one background thread and goes on.
The thread takes whatever has accumulated, merges the changes of each task (a STARTED and a
SUCCESS that meet become one row write) and upserts the lot in one transaction. Changes
arriving within `LINGER_SECONDS` of the first share its write: a task of a few milliseconds
then has its STARTED and SUCCESS in one row write instead of two transactions, and under load
many tasks share a round trip. A status row is thus up to that much behind the task;
`flush()` writes at once.

Changes of one task are applied in the order they were made (one thread, batches in order).
Writes stay best effort, as before: a batch that fails is retried a couple of times and then
dropped with a warning, since a task's work matters more than its status row. What is still
queued when the process exits cleanly is flushed (worker shutdown, pool child exit, atexit).
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from boxoffice_db.engine import session_scope
from boxoffice_db.models import TaskRecord
from sqlalchemy import func
from sqlalchemy.dialects.postgresql import Insert, insert

log = logging.getLogger(__name__)

# A write that fails on a connection PostgreSQL dropped (a restart) succeeds on a fresh one.
WRITE_PAUSES = (0.2, 0.5)
FLUSH_TIMEOUT_SECONDS = 10.0
# How long the first change of a batch waits for others, and the batch that stops the wait.
LINGER_SECONDS = 0.05
MAX_BATCH = 500


@dataclass
class StatusChange:
    """What to write for one task: the columns to set, and what only a new row needs."""

    task_id: str
    name: str
    changes: dict[str, Any]
    insert_values: dict[str, Any] = field(default_factory=dict)

    def merge(self, later: StatusChange) -> None:
        self.name = later.name or self.name
        self.insert_values = {**self.insert_values, **later.insert_values}
        self.changes = {**self.changes, **later.changes}
        started, completed = self.changes.get("started_at"), self.changes.get("completed_at")
        if isinstance(started, datetime) and isinstance(completed, datetime):
            # Both ends known here: no need to read the row's started_at back.
            self.changes["runtime_seconds"] = max(0.0, (completed - started).total_seconds())


def write_changes(changes: list[StatusChange]) -> None:
    """Upsert the rows in one transaction, one statement per set of columns changed."""
    groups: dict[tuple[str, ...], list[StatusChange]] = {}
    for change in changes:
        groups.setdefault(tuple(sorted(change.changes)), []).append(change)
    with session_scope() as session:
        connection = session.connection()
        for columns, group in groups.items():
            rows = [
                {"id": c.task_id, "name": c.name, "args_summary": {}} | c.insert_values | c.changes
                for c in group
            ]
            # One multi-row statement needs the same keys in every row.
            keys = set().union(*rows)
            connection.execute(
                _upsert(columns), [{key: row.get(key) for key in keys} for row in rows]
            )


@functools.lru_cache(maxsize=64)
def _upsert(columns: tuple[str, ...]) -> Insert:
    """INSERT ... ON CONFLICT (id) DO UPDATE of `columns`; built once per set of columns."""
    statement = insert(TaskRecord)
    set_: dict[str, Any] = {column: statement.excluded[column] for column in columns}
    set_["updated_at"] = func.now()
    if "completed_at" in columns and "runtime_seconds" not in columns:
        # Finished, started in an earlier batch (or by another worker): time it from the
        # row's own started_at.
        set_["runtime_seconds"] = func.extract(
            "epoch", statement.excluded.completed_at - TaskRecord.started_at
        )
    return statement.on_conflict_do_update(index_elements=[TaskRecord.id], set_=set_)


class StatusWriter:
    """One background thread applying submitted changes in order, merged and batched."""

    def __init__(
        self,
        write: Callable[[list[StatusChange]], None] = write_changes,
        linger: float = LINGER_SECONDS,
    ) -> None:
        self._write = write
        self._linger = linger
        # Set while the writer waits for a first change: only then does a submit wake it (a
        # wake-up per change cost as much as the write it saved). A flush, or a full batch,
        # cuts the linger short through `_hurry`.
        self._idle = False
        self._hurry = threading.Event()
        self._cond = threading.Condition()
        self._pending: dict[str, StatusChange] = {}
        self._submitted = 0
        self._written = 0
        self._thread: threading.Thread | None = None
        self._pid = 0

    def submit(self, change: StatusChange) -> None:
        with self._cond:
            self._ensure_thread()
            queued = self._pending.get(change.task_id)
            if queued is None:
                self._pending[change.task_id] = change
            else:
                queued.merge(change)
            self._submitted += 1
            if self._idle:
                self._cond.notify_all()
            elif len(self._pending) >= MAX_BATCH:
                self._hurry.set()

    def flush(self, timeout: float = FLUSH_TIMEOUT_SECONDS) -> bool:
        """Wait until every change submitted so far is written (or dropped); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._pid != os.getpid():
                return True  # nothing submitted in this process
            target = self._submitted
            while self._written < target:
                self._hurry.set()  # the writer stops lingering
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _ensure_thread(self) -> None:
        # After a fork (prefork pool children) the parent's thread does not exist here.
        if self._pid != os.getpid() or self._thread is None or not self._thread.is_alive():
            if self._pid != os.getpid():
                self._pending = {}
                self._submitted = self._written = 0
                self._idle, self._hurry = False, threading.Event()
            self._pid = os.getpid()
            self._thread = threading.Thread(
                target=self._run, name="task-status-writer", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._idle = True
                while not self._pending:
                    self._cond.wait()
                self._idle = False
            self._hurry.wait(self._linger)
            with self._cond:
                self._hurry.clear()
                batch, self._pending = list(self._pending.values()), {}
                taken = self._submitted
            self._write_with_retries(batch)
            with self._cond:
                self._written = taken
                self._cond.notify_all()

    def _write_with_retries(self, batch: list[StatusChange]) -> None:
        for pause in (*WRITE_PAUSES, None):
            try:
                self._write(batch)
                return
            except Exception as exc:
                if pause is None:
                    log.warning(
                        "could not record the status of %d tasks: %s",
                        len(batch),
                        exc,
                        extra={"task_ids": [c.task_id for c in batch][:20]},
                    )
                    return
                time.sleep(pause)


_writer = StatusWriter()


def submit(
    task_id: str,
    name: str,
    changes: Mapping[str, Any],
    insert_values: Mapping[str, Any] | None = None,
) -> None:
    """Queue a status change for this process's writer thread."""
    _writer.submit(StatusChange(task_id, name, dict(changes), dict(insert_values or {})))


def flush(timeout: float = FLUSH_TIMEOUT_SECONDS) -> bool:
    """Write what is queued now (at shutdown, and for callers that read their own writes)."""
    return _writer.flush(timeout)


atexit.register(flush)
