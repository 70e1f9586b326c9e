"""One round trip through Celery on a Redis URL: publish, consume, store and read a result."""

from __future__ import annotations

import json
import uuid

from boxoffice_messaging.routes import QUEUE_REAPER
from celery import Celery
from redis import Redis


def assert_celery_round_trip(app: Celery, client: Redis, probe: str) -> None:
    """Send the task `probe` on the reaper queue, take it off again, and store and read a
    result on the app's result backend; `client` (the same Redis) sees each step."""
    client.delete(QUEUE_REAPER)
    marker = str(uuid.uuid4())
    app.send_task(probe, args=[marker], queue=QUEUE_REAPER)
    assert client.llen(QUEUE_REAPER) == 1

    with app.connection_for_read() as connection:
        queue = connection.SimpleQueue(QUEUE_REAPER)
        message = queue.get(timeout=10)
        assert message.headers["task"] == probe
        assert json.loads(message.body or "null")[0] == [marker]
        message.ack()
        queue.close()
    assert client.llen(QUEUE_REAPER) == 0

    # A result backend on the same URL (the notifier's chord results) goes through it too.
    task_id = str(uuid.uuid4())
    app.backend.store_result(task_id, {"seats": 2}, "SUCCESS")
    assert app.AsyncResult(task_id).get(timeout=10) == {"seats": 2}
    assert client.exists(f"celery-task-meta-{task_id}") == 1
