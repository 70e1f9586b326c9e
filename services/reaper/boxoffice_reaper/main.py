"""`boxoffice-reaper`: a Celery worker on the `reaper` queue."""

from __future__ import annotations

import logging
import sys

from boxoffice_db.engine import dispose_engine
from boxoffice_messaging.celery_app import create_celery_app
from boxoffice_messaging.routes import QUEUE_REAPER
from boxoffice_messaging.worker import run_worker
from boxoffice_settings import get_settings
from celery import Celery
from celery.signals import worker_process_init

from boxoffice_reaper.tasks import register_tasks


def create_app() -> Celery:
    app = create_celery_app("boxoffice-reaper", get_settings())
    register_tasks(app)
    return app


@worker_process_init.connect
def _after_fork(**_: object) -> None:
    dispose_engine()


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    args = argv if argv is not None else sys.argv[1:]
    worker_args = [
        "worker",
        "--pool=threads",
        f"--concurrency={settings.worker_concurrency}",
        "--without-mingle",
        "--without-gossip",
        "--hostname=reaper@%h",
        "--loglevel=INFO",
        "-Q",
        QUEUE_REAPER,
        *args,
    ]

    def create_quiet_app() -> Celery:
        # A sweep a second would flood the log; the sweep logs itself when it expires anything.
        for noisy in ("celery.app.trace", "celery.worker.strategy"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        return create_app()

    run_worker(create_quiet_app, settings, worker_args, service="reaper", log_name="reaper")


if __name__ == "__main__":
    main()
