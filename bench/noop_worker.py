"""The baseline worker: a stock Celery no-op task, run with the notifier's worker settings."""

from __future__ import annotations

from boxoffice_messaging.celery_app import create_celery_app
from boxoffice_notifier.pools import channel_and_concurrency
from boxoffice_settings import get_settings
from boxoffice_telemetry.heap import freeze_startup_heap
from celery import Celery
from celery.signals import worker_ready
from kombu import Queue

QUEUE_NOOP = "bench.noop"
TASK_NOOP = "bench.noop"


def create_app() -> Celery:
    app = create_celery_app("bench-noop", get_settings())
    app.conf.task_queues = [*app.conf.task_queues, Queue(QUEUE_NOOP)]

    @app.task(name=TASK_NOOP)
    def noop(message: object) -> None:
        """Takes the same argument as a notifier task and does nothing with it."""

    return app


def main() -> None:
    settings = get_settings()
    # The email worker's pool size, chosen as boxoffice_notifier.main chooses it (32 threads
    # by default; BOXOFFICE_WORKER_CONCURRENCY alone, 4 by default, is not what it runs with).
    _, concurrency, _ = channel_and_concurrency(settings, ["email"])
    # Its startup heap frozen when it consumes, as the notifier's is (boxoffice_telemetry.heap
    # through boxoffice_telemetry.wiring), so that the ratio compares the tasks alone.
    worker_ready.connect(lambda **_: freeze_startup_heap(), weak=False)
    # The same command line as boxoffice_notifier.main, on the no-op queue.
    create_app().worker_main(
        [
            "worker",
            "--pool=threads",
            f"--concurrency={concurrency}",
            "--without-mingle",
            "--without-gossip",
            "--loglevel=INFO",
            "-Q",
            QUEUE_NOOP,
        ]
    )


if __name__ == "__main__":
    main()
