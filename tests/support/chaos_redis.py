"""The chaos run's Redis: one durable server, or a primary, a replica and a real Sentinel.

`CHAOS_REDIS=plain` (the default) restarts the one server once. `CHAOS_REDIS=sentinel` runs
the services on a `sentinel://` REDIS_URL, as the chart does, and fails the primary over twice
mid-run: once by `SENTINEL FAILOVER` (an operator's switch), once by kill -9 of the primary
(the Sentinel notices within a second and promotes the replica; writes it had not replicated
are lost, as in production). The killed server comes back as a replica of the new primary.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from boxoffice_devstack.servers import RedisServer
from boxoffice_messaging.redis_client import broker_transport_options, redis_client
from redis import Redis

from tests.support.sentinel import SentinelServer

MASTER = "boxoffice-chaos"
MODES = ("plain", "sentinel")


class ChaosRedis:
    """Start with `.start()`; `url` and `env` are what the services read."""

    def __init__(self, data_dir: Path, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"CHAOS_REDIS must be one of {MODES}, not {mode!r}")
        self.mode = mode
        self.servers = [RedisServer(data_dir / "redis-a", durable=True)]
        self.sentinel: SentinelServer | None = None
        if mode == "sentinel":
            primary = self.servers[0]
            self.servers.append(
                RedisServer(data_dir / "redis-b", durable=True, replica_of=primary.port)
            )
            # Down after 1 s of silence; a failover attempt times out after 5 s.
            self.sentinel = SentinelServer(
                data_dir / "sentinel",
                MASTER,
                primary.port,
                down_after_ms=1000,
                failover_timeout_ms=5000,
            )

    def start(self) -> ChaosRedis:
        try:
            for server in self.servers:
                server.start()
            if self.sentinel is not None:
                self.sentinel.start()
                self.sentinel.wait_for_replica()
                self._url = self.sentinel.url()
            else:
                self._url = self.servers[0].url
        except BaseException:
            self.stop()  # nothing started here outlives a failed start
            raise
        return self

    def stop(self) -> None:
        if self.sentinel is not None:
            self.sentinel.stop()
        for server in self.servers:
            server.stop()

    @property
    def url(self) -> str:
        return self._url

    @property
    def env(self) -> dict[str, str]:
        env = {"REDIS_URL": self.url}
        if self.sentinel is not None:
            env["BOXOFFICE_REDIS_SENTINEL_MASTER"] = MASTER
        return env

    def transport_options(self) -> dict[str, str]:
        """The kombu options a Celery producer on `url` needs."""
        return broker_transport_options(self.url, MASTER)

    def client(self) -> Redis:
        return redis_client(self.url, sentinel_master=MASTER, socket_connect_timeout=1)

    def actions(self) -> list[tuple[str, Callable[[], str]]]:
        """The Redis disasters of this mode, each a (name, action) that says what it did."""
        if self.sentinel is None:
            return [("redis", self._restart)]
        return [("redis-failover", self._failover), ("redis-kill-primary", self._kill_primary)]

    def _restart(self) -> str:
        server = self.servers[0]
        server.stop()
        time.sleep(1.0)
        server.start()
        return "Redis stopped for ~1s and restarted"

    def _server_on(self, port: int) -> RedisServer:
        return next(s for s in self.servers if s.port == port)

    def _failover(self) -> str:
        assert self.sentinel is not None
        started = time.monotonic()
        self.sentinel.wait_for_replica()
        old = self.sentinel.primary()
        assert old is not None
        self.sentinel.failover()
        new = self.sentinel.wait_for_primary_change(old)
        switched = time.monotonic() - started
        # The old primary is reconfigured as a replica; the next failover needs it in sync.
        self.sentinel.wait_for_replica()
        return f"SENTINEL FAILOVER: primary :{old} -> :{new} in {switched:.1f}s"

    def _kill_primary(self) -> str:
        assert self.sentinel is not None
        self.sentinel.wait_for_replica()
        old = self.sentinel.primary()
        assert old is not None
        server = self._server_on(old)
        assert server.process is not None
        started = time.monotonic()
        server.process.kill()
        server.process.wait(10)
        server.process = None
        # An earlier failover of this master holds the next back for 2 x failover-timeout.
        new = self.sentinel.wait_for_primary_change(old, timeout=90)
        switched = time.monotonic() - started
        server.replica_of = new
        server.start()
        self.sentinel.wait_for_replica()
        return (
            f"kill -9 of the Redis primary :{old}; Sentinel promoted :{new} after "
            f"{switched:.1f}s; :{old} back as its replica"
        )
