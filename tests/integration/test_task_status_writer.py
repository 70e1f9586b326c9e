"""Task-status rows written behind the tasks (status_writer) on real PostgreSQL."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from boxoffice_db.engine import session_scope
from boxoffice_db.models import TaskRecord, TaskStatus
from boxoffice_messaging import status_writer
from boxoffice_messaging.status_writer import StatusChange, StatusWriter, write_changes

from tests.support.processes import wait_until
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

NAME = "notifier.send_booking_confirmation"


def row(task_id: str) -> TaskRecord | None:
    with session_scope() as session:
        return session.get(TaskRecord, task_id)


def started(task_id: str, at: datetime) -> StatusChange:
    return StatusChange(
        task_id,
        NAME,
        {
            "queue": "notifier.email",
            "status": TaskStatus.STARTED,
            "retries": 0,
            "worker": "test:1",
            "started_at": at,
            "completed_at": None,
            "runtime_seconds": None,
        },
        {"args_summary": {"args": [{"event_id": "e"}], "kwargs": {}}},
    )


def succeeded(task_id: str, at: datetime) -> StatusChange:
    return StatusChange(
        task_id,
        NAME,
        {"status": TaskStatus.SUCCESS, "completed_at": at, "result": {"value": "sent"}},
    )


def test_a_start_and_finish_that_meet_become_one_row_with_its_runtime(stack: Stack) -> None:
    task_id = str(uuid.uuid4())
    begin = datetime.now(UTC)
    change = started(task_id, begin)
    change.merge(succeeded(task_id, begin + timedelta(milliseconds=250)))
    write_changes([change])
    record = row(task_id)
    assert record is not None
    assert record.status is TaskStatus.SUCCESS
    assert record.args_summary == {"args": [{"event_id": "e"}], "kwargs": {}}
    assert record.worker == "test:1"
    assert record.result == {"value": "sent"}
    assert record.runtime_seconds == pytest.approx(0.25)


def test_a_finish_written_after_its_start_times_the_run_from_the_row(stack: Stack) -> None:
    task_id = str(uuid.uuid4())
    begin = datetime.now(UTC)
    write_changes([started(task_id, begin)])
    record = row(task_id)
    assert record is not None
    assert record.status is TaskStatus.STARTED
    write_changes([succeeded(task_id, begin + timedelta(seconds=2))])
    record = row(task_id)
    assert record is not None
    assert record.status is TaskStatus.SUCCESS
    assert record.runtime_seconds == pytest.approx(2.0)
    assert record.started_at == begin


def test_a_finish_for_an_unknown_task_inserts_its_row(stack: Stack) -> None:
    task_id = str(uuid.uuid4())
    write_changes([succeeded(task_id, datetime.now(UTC))])
    record = row(task_id)
    assert record is not None
    assert record.status is TaskStatus.SUCCESS
    assert record.args_summary == {}


def test_changes_of_many_tasks_from_many_threads_all_land_in_order(stack: Stack) -> None:
    writer = StatusWriter()
    task_ids = [str(uuid.uuid4()) for _ in range(200)]
    begin = datetime.now(UTC)

    def run(ids: list[str]) -> None:
        for task_id in ids:
            writer.submit(started(task_id, begin))
            writer.submit(succeeded(task_id, begin + timedelta(seconds=1)))

    threads = [threading.Thread(target=run, args=(task_ids[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert writer.flush(timeout=30)
    with session_scope() as session:
        records = session.query(TaskRecord).filter(TaskRecord.id.in_(task_ids)).all()
    assert len(records) == len(task_ids)
    assert {r.status for r in records} == {TaskStatus.SUCCESS}
    assert all(r.runtime_seconds == pytest.approx(1.0) for r in records)


def test_a_failing_database_write_is_retried_then_dropped_without_blocking_flush(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    def broken(changes: list[StatusChange]) -> None:
        calls.append(len(changes))
        raise OSError("database away")

    writer = StatusWriter(write=broken)
    writer.submit(succeeded(str(uuid.uuid4()), datetime.now(UTC)))
    assert writer.flush(timeout=10)
    assert len(calls) == 3  # the first attempt and two retries
    assert "could not record the status of 1 tasks" in caplog.text


def test_the_module_writer_flushes_on_request(stack: Stack) -> None:
    task_id = str(uuid.uuid4())
    status_writer.submit(task_id, NAME, {"status": TaskStatus.REVOKED, "error": "revoked"})
    assert status_writer.flush()
    record = row(task_id)
    assert record is not None
    assert record.status is TaskStatus.REVOKED


def test_a_short_tasks_start_and_finish_share_one_write(stack: Stack) -> None:
    """The writer waits a moment after the first change for others: a task of a few
    milliseconds (most notifications) is one row write, not two transactions."""
    batches: list[list[StatusChange]] = []

    def recording(changes: list[StatusChange]) -> None:
        batches.append(changes)
        write_changes(changes)

    writer = StatusWriter(write=recording)
    task_id, begin = str(uuid.uuid4()), datetime.now(UTC)
    writer.submit(started(task_id, begin))
    time.sleep(status_writer.LINGER_SECONDS / 5)  # the task runs
    writer.submit(succeeded(task_id, begin + timedelta(seconds=1)))
    wait_until(lambda: bool(batches), 10, "the write")
    assert writer.flush(timeout=10)
    assert [len(batch) for batch in batches] == [1]
    record = row(task_id)
    assert record is not None
    assert record.status is TaskStatus.SUCCESS
    assert record.runtime_seconds == pytest.approx(1.0)


def test_flush_does_not_wait_out_the_linger(stack: Stack) -> None:
    writer = StatusWriter(linger=60.0)
    task_id = str(uuid.uuid4())
    writer.submit(succeeded(task_id, datetime.now(UTC)))
    started_at = time.monotonic()
    assert writer.flush(timeout=30)
    assert time.monotonic() - started_at < 30
    assert row(task_id) is not None
