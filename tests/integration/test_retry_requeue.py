"""A retry that cannot be published (the broker is down) requeues the message, never drops it."""

from __future__ import annotations

import pytest
from boxoffice_devstack.servers import free_port
from boxoffice_messaging.celery_app import create_celery_app
from boxoffice_messaging.reliable import ReliableTask, reliable_task
from boxoffice_settings import get_settings
from celery.exceptions import Reject

from tests.support.stack import Stack

pytestmark = pytest.mark.integration


def test_a_retry_the_broker_refuses_becomes_a_requeue(stack: Stack) -> None:
    # A broker address where nothing listens: publishing the retry fails for real.
    settings = get_settings().model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    app = create_celery_app("boxoffice-test", settings)
    app.conf.broker_connection_retry = False
    app.conf.broker_transport_options = {"max_retries": 0}

    @reliable_task(app, "test.flaky", dead_letter=False)
    def flaky() -> None:
        raise ConnectionError("the SMTP server went away")

    task: ReliableTask = flaky
    # As the worker calls it: a request that is not "called directly".
    task.push_request(
        id="retry-requeue-1", retries=0, delivery_info={"routing_key": "x"}, called_directly=False
    )
    try:
        with pytest.raises(Reject) as rejected:
            task.retry_or_requeue(ConnectionError("the SMTP server went away"), 1)
    finally:
        task.pop_request()
    assert getattr(rejected.value, "requeue", None) is True
