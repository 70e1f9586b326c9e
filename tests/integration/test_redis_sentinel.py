"""REDIS_URL may name Redis Sentinels: a real master and a real Sentinel on loopback ports."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import httpx
import pytest
from boxoffice_devstack.servers import RedisServer, free_port
from boxoffice_messaging.celery_app import create_celery_app
from boxoffice_messaging.redis_client import (
    async_redis_client,
    redis_client,
    redis_from_settings,
)
from boxoffice_settings import Settings
from redis.asyncio import BlockingConnectionPool
from redis.asyncio import Redis as AsyncRedis

from tests.support.catalog import make_showtime
from tests.support.celery_probe import assert_celery_round_trip
from tests.support.processes import ServiceProcess, wait_for_http, wait_until
from tests.support.sentinel import SentinelServer
from tests.support.smtp import SmtpServer
from tests.support.stack import API_KEY, Stack

pytestmark = pytest.mark.integration

MASTER = "boxoffice-test-master"


@pytest.fixture(scope="module")
def sentinel_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis master and a Sentinel watching it; yields the sentinel:// URL the services read."""
    data = tmp_path_factory.mktemp("sentinel")
    master = RedisServer(data / "master").start()
    sentinel = SentinelServer(data / "sentinel", MASTER, master.port)
    try:
        sentinel.start()
        # Two entries, as production URLs have; the second Sentinel is not running.
        yield sentinel.url()
    finally:
        sentinel.stop()
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
    # The messages sit in the master's lists, where the Sentinel said the master is.
    assert_celery_round_trip(app, client, "reaper.sentinel_probe")


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


def test_relay_notifier_api_and_admin_cli_work_on_a_sentinel_url(
    stack: Stack, sentinel_url: str
) -> None:
    """Every process reads REDIS_URL through the one client factory, so a sentinel:// URL works.

    Before the factory was used everywhere, the relay crash-looped on `Redis.from_url`
    ("sentinel://" is not a redis-py scheme), the notifier's sent marks failed the same way
    (and the message was acked and lost), and the admin CLI and `/v1/tasks/stats` could not
    read the queues.
    """
    smtp = SmtpServer(smtputf8=True).start()
    port = free_port()
    env = stack.env(
        REDIS_URL=sentinel_url,
        BOXOFFICE_REDIS_SENTINEL_MASTER=MASTER,
        BOXOFFICE_API_PORT=str(port),
        BOXOFFICE_SMTP_HOST="127.0.0.1",
        BOXOFFICE_SMTP_PORT=str(smtp.port),
    )
    logs = stack.var / "sentinel-logs"
    processes = [
        ServiceProcess(name, module, env, logs).start()
        for name, module in (
            ("api", "boxoffice_booking.main"),
            ("relay", "boxoffice_booking.relay"),
            ("notifier", "boxoffice_notifier.main"),
        )
    ]
    _, relay, notifier = processes
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(base + "/readyz", timeout=180)
        notifier.wait_for_log("ready.", timeout=180)
        client = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10
        )
        showtime_id = make_showtime()
        # A real customer's address: the API accepts it and the notifier delivers it.
        local = f"josé.{uuid.uuid4().hex[:8]}"
        email = f"{local}@exämple.com"
        held = client.post(
            "/v1/bookings",
            json={"showtime_id": str(showtime_id), "seats": ["B1"], "customer": {"email": email}},
        )
        assert held.status_code == 201, held.text
        booking = held.json()
        paid = client.post(
            f"/v1/bookings/{booking['id']}/payments",
            json={"provider": "test", "outcome": "succeeded"},
        )
        assert paid.status_code == 201, paid.text

        # relay -> Redis master found through the Sentinel -> notifier -> SMTP
        def confirmation_sent() -> bool:
            return any(f"{local}@xn--exmple-cua.com" in rcpt for _, rcpt in smtp.envelopes())

        wait_until(confirmation_sent, 90, "the confirmation email through the sentinel")

        stats = client.get("/v1/tasks/stats")
        assert stats.status_code == 200, stats.text
        assert stats.json()["backlog"] is not None, "the API reads the queues through Sentinel"

        cli = subprocess.run(
            [sys.executable, "-m", "boxoffice_booking.admin", "--json", "queues"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert cli.returncode == 0, cli.stderr
        assert set(json.loads(cli.stdout)["queues"]) == {"notifier.email", "notifier.sms", "reaper"}
        for process in processes:
            process.assert_running()
        assert "Traceback" not in relay.log(), relay.log()[-3000:]
        client.close()
    finally:
        for process in processes:
            process.stop()
        smtp.stop()


async def _many_slow_commands(client: AsyncRedis, count: int) -> list[object]:
    try:
        # Each BLPOP holds its connection for 50 ms: far more at once than the pool has.
        return await asyncio.gather(
            *(client.blpop([f"nothing-{uuid.uuid4().hex}"], timeout=0.05) for _ in range(count))
        )
    finally:
        await client.aclose()


@pytest.mark.parametrize("kind", ["plain", "sentinel"])
def test_a_burst_past_the_asyncio_pool_waits_for_a_connection(
    kind: str, stack: Stack, sentinel_url: str
) -> None:
    """The API's asyncio client (max_connections): 40 commands at once on 4 connections all
    run, where redis-py's default pool raises MaxConnectionsError past its limit."""
    url = sentinel_url if kind == "sentinel" else stack.redis_url
    client = async_redis_client(
        url, sentinel_master=MASTER, max_connections=4, pool_timeout=5, socket_timeout=2
    )
    assert asyncio.run(_many_slow_commands(client, 40)) == [None] * 40
    pool = client.connection_pool
    assert isinstance(pool, BlockingConnectionPool)
    assert pool.max_connections == 4
