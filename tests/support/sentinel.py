"""A real Redis Sentinel (the redis wheel's server in sentinel mode) on a loopback port."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import IO

from boxoffice_devstack.servers import free_port, redis_server_binary, stop_process, wait_for_start
from redis import Redis


class SentinelServer:
    """One Sentinel watching the primary `master` on `primary_port`, with quorum 1.

    `down_after_ms` is how long the primary may be silent before it is failed over; short
    in tests, so a killed primary is replaced within a few seconds.
    """

    def __init__(
        self,
        data_dir: Path,
        master: str,
        primary_port: int,
        *,
        down_after_ms: int = 30_000,
        failover_timeout_ms: int = 180_000,
    ) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self.master = master
        self.port = free_port()
        self.primary_port = primary_port
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def url(self, *, absent_peer: bool = True) -> str:
        """The sentinel:// REDIS_URL; with a second entry no Sentinel answers on, as a
        production URL names several (a client needs only one that answers)."""
        url = f"sentinel://127.0.0.1:{self.port}/0"
        return f"{url};sentinel://127.0.0.1:{free_port()}/0" if absent_peer else url

    def start(self) -> SentinelServer:
        # Sentinel rewrites its config file, so it gets a writable one of its own.
        config = self.data_dir / "sentinel.conf"
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.data_dir}\n"
            f"sentinel monitor {self.master} 127.0.0.1 {self.primary_port} 1\n"
            f"sentinel down-after-milliseconds {self.master} {self.down_after_ms}\n"
            f"sentinel failover-timeout {self.master} {self.failover_timeout_ms}\n"
        )
        self._log = open(self.data_dir / "sentinel.log", "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [redis_server_binary(), str(config), "--sentinel"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_for_start(
            self.process,
            lambda: self.primary() is not None,
            f"sentinel did not start; see {self._log.name}",
            timeout=10,
        )
        return self

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def _ask(self, *command: str) -> object:
        with Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=2) as client:
            return client.execute_command(*command)

    def primary(self) -> int | None:
        """The port of the primary this Sentinel names now."""
        answer = self._ask("SENTINEL", "get-master-addr-by-name", self.master)
        if not answer:
            return None
        assert isinstance(answer, list | tuple)
        return int(answer[1])

    def healthy_replicas(self) -> list[int]:
        """Ports of the replicas the Sentinel sees up and in sync with the primary."""
        replicas = self._ask("SENTINEL", "replicas", self.master)
        assert isinstance(replicas, list)
        ports = []
        for replica in replicas:
            # redis-py answers a dict per replica, or the raw flat list of names and values.
            items = (
                replica.items()
                if isinstance(replica, dict)
                else zip(replica[::2], replica[1::2], strict=True)
            )
            fields = {_text(k): _text(v) for k, v in items}
            flags = set(fields.get("flags", "").split(","))
            if flags & {"s_down", "o_down", "disconnected"}:
                continue
            if fields.get("master-link-status") == "ok":
                ports.append(int(fields["port"]))
        return ports

    def wait_for_replica(self, timeout: float = 60) -> int:
        """Wait until a replica is up and in sync (a failover needs one); its port."""
        deadline = time.monotonic() + timeout
        while True:
            replicas = self.healthy_replicas()
            if replicas:
                return replicas[0]
            if time.monotonic() > deadline:
                raise TimeoutError(f"no healthy replica of {self.master} after {timeout}s")
            time.sleep(0.2)

    def wait_for_primary_change(self, old: int, timeout: float = 60) -> int:
        """Wait until the Sentinel names a primary other than `old`, and it answers as one."""
        deadline = time.monotonic() + timeout
        while True:
            port = self.primary()
            if port is not None and port != old:
                try:
                    with Redis(port=port, socket_connect_timeout=0.5, socket_timeout=2) as client:
                        if client.info("replication")["role"] == "master":
                            return port
                except Exception:  # promoted, not answering yet: ask again
                    pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.master} was not failed over from :{old} in {timeout}s")
            time.sleep(0.1)

    def failover(self) -> None:
        """SENTINEL FAILOVER: promote a replica now, as an operator (or a primary's node
        draining) does."""
        self._ask("SENTINEL", "failover", self.master)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
