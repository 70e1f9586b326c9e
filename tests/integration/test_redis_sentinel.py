"""REDIS_URL may name Redis Sentinels: a real master and a real Sentinel on loopback ports."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from boxoffice_devstack.servers import RedisServer, free_port, redis_server_binary
from boxoffice_messaging.celery_app import create_celery_app
from boxoffice_messaging.redis_client import redis_client, redis_from_settings
from boxoffice_messaging.routes import QUEUE_REAPER
from boxoffice_settings import Settings
from redis import Redis

from tests.support.processes import ServiceProcess, wait_for_http

pytestmark = pytest.mark.integration

MASTER = "boxoffice-test-master"


@pytest.fixture(scope="module")
def sentinel_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis master and a Sentinel watching it; yields the sentinel:// URL the services read."""
    data = tmp_path_factory.mktemp("sentinel")
    master = RedisServer(data / "master").start()
    port = free_port()
    # Sentinel rewrites its config file, so it gets a writable one of its own.
    config = data / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {data}\n"
        f"sentinel monitor {MASTER} 127.0.0.1 {master.port} 1\n"
    )
    log = open(data / "sentinel.log", "ab")  # noqa: SIM115 - owned by the child
    sentinel = subprocess.Popen(
        [redis_server_binary(), str(config), "--sentinel"], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with Redis(port=port, socket_connect_timeout=0.5) as probe:
                    if probe.execute_command("SENTINEL", "get-master-addr-by-name", MASTER):
                        break
            except Exception:
                if time.monotonic() > deadline or sentinel.poll() is not None:
                    raise RuntimeError(f"sentinel did not start; see {log.name}") from None
            time.sleep(0.05)
        # Two entries, as production URLs have; the second Sentinel is not running (a client
        # only needs one that answers).
        yield f"sentinel://127.0.0.1:{port}/0;sentinel://127.0.0.1:{free_port()}/0"
    finally:
        sentinel.terminate()
        sentinel.wait(10)
        master.stop()


def test_the_helper_finds_the_master_through_the_sentinel(sentinel_url: str) -> None:
    client = redis_client(sentinel_url, sentinel_master=MASTER, socket_connect_timeout=1)
    key = f"sentinel-test-{uuid.uuid4()}"
    client.set(key, "through the sentinel")
    assert client.info("server")["redis_mode"] == "standalone"  # the master, not the Sentinel
    assert client.get(key) == b"through the sentinel"
    assert client.info("replication")["role"] == "master"


def test_celery_publishes_and_consumes_through_the_sentinel(sentinel_url: str) -> None:
    settings = Settings(
        database_url="postgresql://unused@127.0.0.1:1/unused",
        redis_url=sentinel_url,
        redis_sentinel_master=MASTER,
    )
    app = create_celery_app("sentinel-test", settings)
    app.conf.update(result_backend=sentinel_url)  # as the notifier configures it
    assert app.conf.broker_transport_options["master_name"] == MASTER
    client = redis_from_settings(settings, socket_connect_timeout=1)
    client.delete(QUEUE_REAPER)

    marker = str(uuid.uuid4())
    app.send_task("reaper.sentinel_probe", args=[marker], queue=QUEUE_REAPER)
    # The message sits in the master's list, where the Sentinel said the master is.
    assert client.llen(QUEUE_REAPER) == 1

    with app.connection_for_read() as connection:
        queue = connection.SimpleQueue(QUEUE_REAPER)
        message = queue.get(timeout=10)
        assert message.headers["task"] == "reaper.sentinel_probe"
        assert json.loads(message.body or "null")[0] == [marker]
        message.ack()
        queue.close()
    assert client.llen(QUEUE_REAPER) == 0

    # A result backend on the same URL (the notifier's chord results) goes through it too.
    task_id = str(uuid.uuid4())
    app.backend.store_result(task_id, {"seats": 2}, "SUCCESS")
    assert app.AsyncResult(task_id).get(timeout=10) == {"seats": 2}
    assert client.exists(f"celery-task-meta-{task_id}") == 1


def test_flower_as_the_chart_runs_it_needs_basic_auth(
    sentinel_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The chart's command and env: the services' Celery app over Sentinel, behind basic auth."""
    port = free_port()
    env = dict(os.environ)
    env.update(
        DATABASE_URL="postgresql://unused@127.0.0.1:1/unused",
        REDIS_URL=sentinel_url,
        BOXOFFICE_REDIS_SENTINEL_MASTER=MASTER,
        FLOWER_BASIC_AUTH="ops:flower-pw",
    )
    flower = ServiceProcess(
        "flower",
        "celery",
        env,
        tmp_path_factory.mktemp("flower"),
        ("-A", "boxoffice_messaging.flower_app", "flower", "--address=127.0.0.1", f"--port={port}"),
    ).start()
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/healthcheck", timeout=60)  # the probe's page needs no login
        assert httpx.get(f"{base}/", timeout=10).status_code == 401
        assert httpx.get(f"{base}/api/workers", timeout=10).status_code == 401
        wrong = httpx.get(f"{base}/", auth=("ops", "guess"), timeout=10)
        assert wrong.status_code == 401
        assert httpx.get(f"{base}/tasks", auth=("ops", "flower-pw"), timeout=30).status_code == 200
        flower.assert_running()
    finally:
        flower.stop()
