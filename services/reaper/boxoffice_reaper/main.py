"""`boxoffice-reaper`: a Celery worker on the `reaper` queue."""

from __future__ import annotations

import logging
import sys

from boxoffice_db.engine import dispose_engine
from boxoffice_messaging.celery_app import create_celery_app
from boxoffice_messaging.routes import QUEUE_REAPER
from boxoffice_settings import get_settings
from boxoffice_telemetry.logs import configure_logging
from boxoffice_telemetry.metrics import serve_metrics
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
    configure_logging("reaper", settings.log_level)
    serve_metrics(settings.metrics_port)
    # A sweep a second would flood the log; the sweep logs itself when it expires anything.
    for noisy in ("celery.app.trace", "celery.worker.strategy"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = argv if argv is not None else sys.argv[1:]
    create_app().worker_main(
        [
            "worker",
            "--pool=threads",
            f"--concurrency={settings.worker_concurrency}",
            "--without-mingle",
            "--without-gossip",
            "--loglevel=INFO",
            "-Q",
            QUEUE_REAPER,
            *args,
        ]
    )


if __name__ == "__main__":
    main()
