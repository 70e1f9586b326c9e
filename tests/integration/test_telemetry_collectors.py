"""Collectors read at scrape time: queues and workers from Redis, dead letters from PostgreSQL."""

from __future__ import annotations

import json
import uuid

import pytest
from boxoffice_messaging.celery_app import create_celery_app
from boxoffice_messaging.redis_client import redis_client
from boxoffice_settings import get_settings
from boxoffice_telemetry.cluster import (
    WORKERS_KEY,
    ClusterCollector,
    WorkerHeartbeat,
    redis_now,
)
from boxoffice_telemetry.wiring import queue_names
from prometheus_client.metrics_core import Metric

from tests.support.stack import Stack

pytestmark = pytest.mark.integration


def families(collector: ClusterCollector) -> dict[str, Metric]:
    return {f.name: f for f in collector.collect()}


def values(family: Metric, label: str) -> dict[str, float]:
    return {s.labels[label]: s.value for s in family.samples}


def test_queue_length_includes_prioritised_messages(stack: Stack) -> None:
    app = create_celery_app("queue-length-test", get_settings())
    queue = "notifier.sms"
    client = redis_client(stack.redis_url)
    for key in client.scan_iter(match=f"{queue}*"):
        client.delete(key)
    for priority in (0, 0, 3, 9):
        app.send_task(
            "notifier.not_a_task", args=[str(uuid.uuid4())], queue=queue, priority=priority
        )
    keys = {k.decode() for k in client.scan_iter(match=f"{queue}*")}
    assert len(keys) >= 2, f"expected priority sub-lists, got {keys}"

    lengths = values(
        families(ClusterCollector(client, queue_names(app), lambda: True))["celery_queue_length"],
        "queue_name",
    )
    assert lengths[queue] == 4
    assert set(lengths) == {"notifier.email", "notifier.sms", "reaper"}
    for key in keys:
        client.delete(key)


def test_only_the_leader_exports_the_cluster_gauges(stack: Stack) -> None:
    """One copy per release: a follower scheduler's scrape has no queue or worker series."""
    client = redis_client(stack.redis_url)
    leading = {"now": False}
    collector = ClusterCollector(client, ["reaper"], lambda: leading["now"])
    assert list(collector.collect()) == []
    leading["now"] = True
    assert set(families(collector)) == {
        "celery_queue_length",
        "celery_worker_up",
        "celery_active_worker_count",
        "celery_active_process_count",
    }


def test_a_dead_worker_reads_zero_and_a_clean_shutdown_is_gone(stack: Stack) -> None:
    client = redis_client(stack.redis_url)
    client.delete(WORKERS_KEY)
    live = WorkerHeartbeat(client, "notifier-email@pod-a", ["notifier.email"], 32, interval=0.2)
    live.start()
    leaving = WorkerHeartbeat(client, "notifier-sms@pod-b", ["notifier.sms"], 8).start()
    # A worker killed a minute ago: its last heartbeat is old and nobody said goodbye.
    killed = {"hostname": "reaper@pod-c", "queues": ["reaper"], "processes": 4}
    client.hset(WORKERS_KEY, "reaper@pod-c", json.dumps(killed | {"at": redis_now(client) - 60}))
    leaving.stop(goodbye=True)
    try:
        collector = ClusterCollector(
            client, ["notifier.email", "notifier.sms", "reaper"], lambda: True, timeout=30
        )
        found = families(collector)
        assert values(found["celery_worker_up"], "hostname") == {
            "notifier-email@pod-a": 1.0,
            "reaper@pod-c": 0.0,
        }
        assert values(found["celery_active_worker_count"], "queue_name") == {
            "notifier.email": 1.0,
            "notifier.sms": 0.0,
            "reaper": 0.0,
        }
        assert values(found["celery_active_process_count"], "queue_name")["notifier.email"] == 32
        # Long dead: purged, as celery-exporter forgets offline workers.
        purging = ClusterCollector(client, ["reaper"], lambda: True, timeout=30, purge_after=45)
        assert "reaper@pod-c" not in values(families(purging)["celery_worker_up"], "hostname")
        assert client.hget(WORKERS_KEY, "reaper@pod-c") is None
    finally:
        live.stop(goodbye=True)
        client.delete(WORKERS_KEY)


def test_cluster_gauges_are_absent_not_an_error_when_redis_is_down() -> None:
    collector = ClusterCollector(
        redis_client("redis://127.0.0.1:1/0", socket_connect_timeout=1), ["reaper"], lambda: True
    )
    assert list(collector.collect()) == []


def test_dead_letter_count_never_fails_a_scrape(stack: Stack) -> None:
    from boxoffice_messaging.dead_letters import waiting_dead_letters
    from boxoffice_telemetry.domain import DeadLetterCollector

    families = list(DeadLetterCollector(waiting_dead_letters).collect())
    for family in families:
        assert family.name == "boxoffice_dead_letters"
        assert all(s.value >= 0 for s in family.samples)
