"""Run a service's Celery worker: metrics, logs and tracing wired the same way for each."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from boxoffice_db.engine import get_engine
from boxoffice_settings import Settings
from boxoffice_telemetry.logs import configure_logging
from boxoffice_telemetry.wiring import setup_celery_worker, use_multiprocess_metrics, worker_pool
from celery import Celery
from celery.app.trace import LOG_RECEIVED, LOG_SUCCESS

from boxoffice_messaging.redis_client import redis_from_settings


def run_worker(
    create_app: Callable[[], Celery],
    settings: Settings,
    worker_args: Sequence[str],
    *,
    service: str,
    log_name: str,
) -> None:
    """`celery worker` with `worker_args` for the app `create_app` makes (after the metrics
    storage is chosen, which a forking pool needs first), with metrics, logs and traces."""
    pool = worker_pool(worker_args)
    use_multiprocess_metrics(pool)
    configure_logging(log_name, settings.log_level)
    quiet_routine_task_lines()
    app = create_app()
    setup_celery_worker(
        app,
        service=service,
        metrics_port=settings.metrics_port,
        redis=redis_from_settings(settings, socket_timeout=2, socket_connect_timeout=2),
        pool=pool,
        engine=get_engine,
    )
    app.worker_main(list(worker_args))


class _DebugOnly(logging.Filter):
    """Drops the records of one Celery message template unless the level is DEBUG."""

    def __init__(self, template: str) -> None:
        super().__init__()
        self.template = template

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg is not self.template or logging.getLogger().isEnabledFor(logging.DEBUG)


def quiet_routine_task_lines() -> None:
    """Celery's "Task ... received" and "Task ... succeeded" lines, two of the three a task
    wrote, show at DEBUG only: the task's own line says what it did (with the task's name and
    id), and they were 6 % of the notifier's CPU samples in a profile under `make bench`.
    Failures, retries, rejections and ignored tasks are still logged as Celery logs them.

    "Received" is the only line `celery.worker.strategy` writes at INFO, and Celery asks that
    logger once, when the worker starts, whether INFO is on: below DEBUG the logger is set to
    WARNING, so each message skips building and dropping the line (a sample in 60 of the
    notifier's, before). `celery.app.trace` also logs retries at INFO: it keeps its level and
    drops only the "succeeded" template."""
    strategy = logging.getLogger("celery.worker.strategy")
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        strategy.setLevel(logging.WARNING)
    for target, template in (
        (strategy, LOG_RECEIVED),
        (logging.getLogger("celery.app.trace"), LOG_SUCCESS),
    ):
        if not any(isinstance(f, _DebugOnly) and f.template is template for f in target.filters):
            target.addFilter(_DebugOnly(template))
