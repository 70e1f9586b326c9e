"""`boxoffice-notifier [email|sms]`: a Celery worker for one notification channel's queue."""

from __future__ import annotations

import sys

from boxoffice_db.engine import dispose_engine, get_engine
from boxoffice_messaging.celery_app import create_celery_app
from boxoffice_messaging.redis_client import redis_from_settings
from boxoffice_settings import get_settings
from boxoffice_telemetry.logs import configure_logging
from boxoffice_telemetry.wiring import setup_celery_worker, use_multiprocess_metrics, worker_pool
from celery import Celery
from celery.signals import worker_process_init, worker_shutdown

from boxoffice_notifier.pools import CHANNEL_QUEUES, channel_and_concurrency
from boxoffice_notifier.providers import reset_providers
from boxoffice_notifier.tasks import register_tasks


def create_app() -> Celery:
    settings = get_settings()
    app = create_celery_app("boxoffice-notifier", settings)
    # The daily report's chord hands its parts' results to the callback through Redis;
    # those results expire after a day (task status proper lives in PostgreSQL).
    app.conf.update(result_backend=settings.redis_url, result_expires=86400)
    register_tasks(app)
    return app


@worker_process_init.connect
def _after_fork(**_: object) -> None:
    dispose_engine()
    reset_providers()


@worker_shutdown.connect
def _on_shutdown(**_: object) -> None:
    reset_providers()  # says QUIT to the SMTP server and closes gateway connections


def main(argv: list[str] | None = None) -> None:
    """Run the worker for a channel (default email); further arguments go to `celery worker`.

    Each channel has its own queue and pool so that one scales without the other. Sending is
    I/O-bound, so the pool is threads.
    """
    settings = get_settings()
    channel, concurrency, args = channel_and_concurrency(
        settings, list(argv if argv is not None else sys.argv[1:])
    )
    # Each sending thread holds one database connection (the delivery row stays locked while
    # the message is handed over), so the pool must have one per thread.
    settings.db_pool_size = max(settings.db_pool_size, concurrency)
    worker_args = [
        "worker",
        "--pool=threads",
        f"--concurrency={concurrency}",
        f"--hostname=notifier-{channel}@%h",
        f"--queues={CHANNEL_QUEUES[channel]}",
        "--without-mingle",
        "--without-gossip",
        "--loglevel=INFO",
        *args,
    ]
    pool = worker_pool(worker_args)
    use_multiprocess_metrics(pool)
    configure_logging(f"notifier-{channel}", settings.log_level)
    app = create_app()
    setup_celery_worker(
        app,
        service="notifier",
        metrics_port=settings.metrics_port,
        redis=redis_from_settings(settings, socket_timeout=2, socket_connect_timeout=2),
        pool=pool,
        engine=get_engine,
    )
    app.worker_main(worker_args)


if __name__ == "__main__":
    main()
