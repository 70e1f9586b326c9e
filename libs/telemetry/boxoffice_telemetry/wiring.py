"""One call per process kind, so each service's main stays a few lines of wiring."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Sequence

from celery import Celery
from celery.signals import worker_process_init, worker_ready, worker_shutting_down
from prometheus_client.registry import Collector
from redis import Redis
from sqlalchemy import Engine

from boxoffice_telemetry.celery import instrument_celery_producer, instrument_celery_worker
from boxoffice_telemetry.cluster import ClusterCollector, WorkerHeartbeat
from boxoffice_telemetry.heap import freeze_startup_heap
from boxoffice_telemetry.metrics import (
    MULTIPROC_ENV,
    multiprocess_dir,
    prepare_multiprocess_dir,
    serve_metrics,
)
from boxoffice_telemetry.tracing import configure_tracing, trace_sqlalchemy

PROCESS_POOLS = frozenset({"prefork", "processes"})


def queue_names(app: Celery) -> list[str]:
    """The queues `app` declares (`task_queues`), whose lengths the scheduler leader reports."""
    return [queue.name for queue in app.conf.task_queues or ()]


def worker_pool(args: Sequence[str], default: str = "prefork") -> str:
    """The pool a `celery worker` command line selects (the last `--pool`/`-P` wins)."""
    pool = default
    items = list(args)
    for i, arg in enumerate(items):
        if arg.startswith("--pool="):
            pool = arg.split("=", 1)[1]
        elif arg in ("--pool", "-P") and i + 1 < len(items):
            pool = items[i + 1]
        elif arg.startswith("-P") and len(arg) > 2:
            pool = arg[2:]
    return pool


def use_multiprocess_metrics(pool: str) -> None:
    """Re-execute this process once with a private PROMETHEUS_MULTIPROC_DIR if `pool` forks.

    prometheus_client picks its storage when first imported, so a prefork worker has to know
    before anything is imported; a worker started without the variable restarts itself with it.
    """
    if pool not in PROCESS_POOLS or multiprocess_dir() is not None:
        return
    os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="boxoffice-metrics-")
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])  # noqa: S606 - ourselves again


def _pool_processes(consumer: object) -> int:
    pool = getattr(consumer, "pool", None)
    count = getattr(pool, "num_processes", None) or getattr(
        getattr(consumer, "controller", None), "concurrency", None
    )
    return int(count or 1)


def _consumed_queues(consumer: object) -> list[str]:
    task_consumer = getattr(consumer, "task_consumer", None)
    return [str(q.name) for q in getattr(task_consumer, "queues", None) or ()]


def start_worker_heartbeat(redis: Redis) -> None:
    """Heartbeat into Redis while the worker consumes; remove it on a clean shutdown.

    The scheduler leader turns the heartbeats into `celery_worker_up` and the per-queue
    worker and process counts (`boxoffice_telemetry.cluster`).
    """
    beating: dict[str, WorkerHeartbeat] = {}

    def started(sender: object = None, **_: object) -> None:
        hostname = str(getattr(sender, "hostname", None) or "unknown")
        beating[hostname] = WorkerHeartbeat(
            redis, hostname, _consumed_queues(sender), _pool_processes(sender)
        ).start()

    def stopping(sender: object = None, **_: object) -> None:
        # worker_shutting_down's sender is the hostname itself.
        heartbeat = beating.pop(str(sender), None)
        if heartbeat is not None:
            heartbeat.stop(goodbye=True)

    worker_ready.connect(started, weak=False)
    worker_shutting_down.connect(stopping, weak=False)


def setup_celery_worker(
    app: Celery,
    *,
    service: str,
    metrics_port: int,
    redis: Redis,
    pool: str,
    engine: Callable[[], Engine],
) -> None:
    """Metrics on `metrics_port`, task metrics and spans from signals, a heartbeat, tracing."""
    prepare_multiprocess_dir()
    instrument_celery_worker(service)
    serve_metrics(metrics_port)
    start_worker_heartbeat(redis)

    def start_tracing(**_: object) -> None:
        if configure_tracing(service):
            trace_sqlalchemy(engine())

    def freeze(**_: object) -> None:
        freeze_startup_heap()

    if pool in PROCESS_POOLS:
        # Export threads do not survive fork: each child sets up its own tracer provider.
        worker_process_init.connect(start_tracing, weak=False)
        worker_process_init.connect(freeze, weak=False)
    else:
        start_tracing()
    # Consuming, with its app, its connections and its pool built (boxoffice_telemetry.heap).
    worker_ready.connect(freeze, weak=False)


def cluster_collector(app: Celery, redis: Redis, is_leader: Callable[[], bool]) -> ClusterCollector:
    """Queue lengths and worker liveness of `app`'s queues, for the scheduler leader to serve."""
    return ClusterCollector(redis, queue_names(app), is_leader)


def setup_producer(
    *,
    service: str,
    metrics_port: int,
    engine: Callable[[], Engine] | None = None,
    collectors: Sequence[Collector] = (),
) -> None:
    """For processes that publish tasks without consuming any (relay, scheduler).

    Queue lengths and worker liveness are not theirs to export: the scheduler passes
    `cluster_collector(...)`, which only its leader serves.
    """
    instrument_celery_producer(service)
    serve_metrics(metrics_port, collectors)
    if configure_tracing(service) and engine is not None:
        trace_sqlalchemy(engine())
