"""One call per process kind, so each service's main stays a few lines of wiring."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Sequence

from celery import Celery
from celery.signals import worker_process_init
from prometheus_client.registry import Collector
from redis import Redis
from sqlalchemy import Engine

from boxoffice_telemetry.celery import instrument_celery_producer, instrument_celery_worker
from boxoffice_telemetry.metrics import (
    MULTIPROC_ENV,
    multiprocess_dir,
    prepare_multiprocess_dir,
    serve_metrics,
)
from boxoffice_telemetry.queues import QueueLengthCollector
from boxoffice_telemetry.tracing import configure_tracing, trace_sqlalchemy

PROCESS_POOLS = frozenset({"prefork", "processes"})


def queue_names(app: Celery) -> list[str]:
    """The queues `app` declares (`task_queues`), whose lengths every process reports."""
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


def setup_celery_worker(
    app: Celery,
    *,
    service: str,
    metrics_port: int,
    redis: Redis,
    pool: str,
    engine: Callable[[], Engine],
) -> None:
    """Metrics on `metrics_port`, task metrics and spans from signals, tracing after fork."""
    prepare_multiprocess_dir()
    instrument_celery_worker()
    serve_metrics(metrics_port, [QueueLengthCollector(redis, queue_names(app))])

    def start_tracing(**_: object) -> None:
        if configure_tracing(service):
            trace_sqlalchemy(engine())

    if pool in PROCESS_POOLS:
        # Export threads do not survive fork: each child sets up its own tracer provider.
        worker_process_init.connect(start_tracing, weak=False)
    else:
        start_tracing()


def setup_producer(
    app: Celery,
    *,
    service: str,
    metrics_port: int,
    redis: Redis,
    engine: Callable[[], Engine] | None = None,
    collectors: Sequence[Collector] = (),
) -> None:
    """For processes that publish tasks without consuming any (relay, scheduler)."""
    instrument_celery_producer()
    serve_metrics(metrics_port, [QueueLengthCollector(redis, queue_names(app)), *collectors])
    if configure_tracing(service) and engine is not None:
        trace_sqlalchemy(engine())
