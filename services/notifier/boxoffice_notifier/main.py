"""`boxoffice-notifier [email|sms]`: a Celery worker for one notification channel's queue."""

from __future__ import annotations

import sys

from boxoffice_db.engine import dispose_engine, get_engine
from boxoffice_messaging.celery_app import create_celery_app
from boxoffice_messaging.redis_client import redis_from_settings
from boxoffice_messaging.routes import QUEUE_EMAIL, QUEUE_SMS
from boxoffice_settings import Settings, get_settings
from boxoffice_telemetry.logs import configure_logging
from boxoffice_telemetry.wiring import setup_celery_worker, use_multiprocess_metrics, worker_pool
from celery import Celery
from celery.signals import worker_process_init, worker_shutdown

from boxoffice_notifier.providers import reset_providers
from boxoffice_notifier.tasks import register_tasks

CHANNEL_QUEUES = {"email": QUEUE_EMAIL, "sms": QUEUE_SMS}


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


def channel_and_concurrency(settings: Settings, args: list[str]) -> tuple[str, int, list[str]]:
    """The channel to serve (`email`/`sms`, or named by `-Q notifier.sms`), its pool size, and
    the arguments left for Celery.

    Pool size: BOXOFFICE_NOTIFIER_<CHANNEL>_CONCURRENCY if set, else BOXOFFICE_WORKER_CONCURRENCY
    if set (the chart sets it per Deployment), else the channel's default.
    """
    rest = list(args)
    channel = rest.pop(0) if rest and rest[0] in CHANNEL_QUEUES else None
    celery_args: list[str] = []
    while rest:
        arg = rest.pop(0)
        if arg in ("-Q", "--queues") and rest:
            value = rest.pop(0)
        elif arg.startswith(("-Q", "--queues=")):
            value = arg.removeprefix("--queues=").removeprefix("-Q")
        else:
            celery_args.append(arg)
            continue
        named = [c for c, queue in CHANNEL_QUEUES.items() if value.strip() == queue]
        if not named or (channel is not None and named[0] != channel):
            raise SystemExit(f"a notifier worker serves one channel's queue, not {value!r}")
        channel = named[0]
    channel = channel or "email"
    field = f"notifier_{channel}_concurrency"
    explicit = settings.model_fields_set
    if field in explicit or "worker_concurrency" not in explicit:
        concurrency = int(getattr(settings, field))
    else:
        concurrency = settings.worker_concurrency
    return channel, concurrency, celery_args


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
