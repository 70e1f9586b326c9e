"""Collectors read at scrape time: queue lengths from a real Redis, dead letters from PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from boxoffice_messaging.celery_app import create_celery_app
from boxoffice_settings import get_settings
from boxoffice_telemetry.queues import QueueLengthCollector
from boxoffice_telemetry.wiring import queue_names
from redis import Redis

from tests.support.stack import Stack

pytestmark = pytest.mark.integration


def test_queue_length_includes_prioritised_messages(stack: Stack) -> None:
    app = create_celery_app("queue-length-test", get_settings())
    queue = "notifier.sms"
    client = Redis.from_url(stack.redis_url)
    for key in client.scan_iter(match=f"{queue}*"):
        client.delete(key)
    for priority in (0, 0, 3, 9):
        app.send_task(
            "notifier.not_a_task", args=[str(uuid.uuid4())], queue=queue, priority=priority
        )
    keys = {k.decode() for k in client.scan_iter(match=f"{queue}*")}
    assert len(keys) >= 2, f"expected priority sub-lists, got {keys}"

    collector = QueueLengthCollector(client, queue_names(app))
    [family] = list(collector.collect())
    lengths = {s.labels["queue_name"]: s.value for s in family.samples}
    assert lengths[queue] == 4
    assert set(lengths) == {"notifier.email", "notifier.sms", "reaper"}
    for key in keys:
        client.delete(key)


def test_queue_length_is_absent_not_an_error_when_redis_is_down() -> None:
    collector = QueueLengthCollector(
        Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1), ["reaper"]
    )
    assert list(collector.collect()) == []


def test_dead_letter_count_never_fails_a_scrape(stack: Stack) -> None:
    from boxoffice_db.engine import get_engine
    from boxoffice_telemetry.domain import DeadLetterCollector

    families = list(DeadLetterCollector(get_engine).collect())
    for family in families:
        assert family.name == "boxoffice_dead_letters"
        assert all(s.value >= 0 for s in family.samples)
