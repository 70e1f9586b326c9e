"""A Celery worker whose tasks end every way a task can end, run as production runs a worker.

`python -m tests.support.outcome_worker` consumes the `probe` queue through
`boxoffice_messaging.worker.run_worker` (the notifier's and reaper's path), so its /metrics
are the real Celery metrics: tests/integration/test_celery_outcomes.py reads them.
"""

from __future__ import annotations

from typing import Any

from boxoffice_messaging.celery_app import create_celery_app
from boxoffice_messaging.worker import run_worker
from boxoffice_settings import get_settings
from celery import Celery, Task
from celery.exceptions import Ignore, Reject
from kombu import Queue

QUEUE = "probe"


def create_app() -> Celery:
    # Tasks of this app only (shared=False): tests make it more than once in one process, and
    # a shared task would be registered again with every Celery app made after it.
    app = create_celery_app("outcome-probe", get_settings())
    app.conf.task_queues = [*app.conf.task_queues, Queue(QUEUE)]

    @app.task(name="probe.ok", shared=False)
    def ok() -> int:
        return 1

    @app.task(name="probe.fail", shared=False)
    def fail() -> None:
        raise ValueError("probe failure")

    @app.task(name="probe.ignore", shared=False)
    def ignore() -> None:
        raise Ignore()

    @app.task(name="probe.reject", shared=False)
    def reject() -> None:
        raise Reject("probe rejection", requeue=False)

    @app.task(name="probe.retry", bind=True, max_retries=1, shared=False)
    def retry(self: Task[Any, Any]) -> int:
        if self.request.retries == 0:
            raise self.retry(countdown=0)
        return 1

    return app


def main() -> None:
    args = ["worker", "--pool=threads", "--concurrency=2", f"--queues={QUEUE}"]
    args += ["--hostname=probe@%h", "--without-mingle", "--without-gossip", "--loglevel=INFO"]
    run_worker(create_app, get_settings(), args, service="probe", log_name="probe")


if __name__ == "__main__":
    main()
