"""Run a service's Celery worker: metrics, logs and tracing wired the same way for each."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from boxoffice_db.engine import get_engine
from boxoffice_settings import Settings
from boxoffice_telemetry.logs import configure_logging
from boxoffice_telemetry.wiring import setup_celery_worker, use_multiprocess_metrics, worker_pool
from celery import Celery

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
