"""`boxoffice-notifier [email|sms]`: a Celery worker for one notification channel's queue."""

from __future__ import annotations

import sys

from boxoffice_db.engine import dispose_engine
from boxoffice_messaging.routes import CHANNEL_QUEUES
from boxoffice_messaging.worker import run_worker
from boxoffice_settings import get_settings
from celery import Celery
from celery.signals import worker_process_init, worker_shutdown

from boxoffice_notifier.pools import channel_and_concurrency
from boxoffice_notifier.providers import reset_providers


def create_app() -> Celery:
    """The notifier's Celery app, with its tasks (declared at module level in tasks.py)."""
    from boxoffice_notifier.tasks import app

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
    run_worker(
        create_app, settings, worker_args, service="notifier", log_name=f"notifier-{channel}"
    )


if __name__ == "__main__":
    main()
