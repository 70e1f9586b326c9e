"""The system under test: private PostgreSQL and Redis, and every service as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from boxoffice_devstack.servers import Postgres, RedisServer, free_port

from bench.config import SERVICE_ENV
from bench.mailbox import Mailbox
from tests.support.processes import ServiceProcess, wait_for_http

ROOT = Path(__file__).resolve().parents[1]
BENCH_VAR = ROOT / "var" / "bench"

SERVICES = {
    "api": "boxoffice_booking.main",
    "relay": "boxoffice_booking.relay",
    "notifier": "boxoffice_notifier.main",
    "scheduler": "boxoffice_scheduler.main",
}
REAPER_MODULE = "boxoffice_reaper.main"


@dataclass
class Infrastructure:
    """PostgreSQL (cluster reused across runs, a fresh database per run) and a private Redis."""

    postgres: Postgres
    redis: RedisServer
    database: str
    database_url: str
    run_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(SERVICE_ENV)
        env.update(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis.url,
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        env.update(extra)
        return env

    def postgres_pid(self) -> int | None:
        for pidfile in self.postgres.data_dir.rglob("postmaster.pid"):
            return int(pidfile.read_text().split()[0])
        return None

    def create_api_key(self) -> str:
        """The bench's own key, made the way an operator makes one (the booking CLI)."""
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "boxoffice_booking.cli",
                "create-api-key",
                "--name",
                "bench",
                "--scope",
                "bookings:read",
                "--scope",
                "bookings:write",
            ],
            env=self.env(),
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout.strip().splitlines()[-1]

    def stop(self) -> None:
        self.redis.stop()
        try:
            self.postgres._server.psql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE);')
        except Exception as exc:  # a leftover database is harmless; say so and go on
            print(f"could not drop {self.database}: {exc}", file=sys.stderr)
        # Also a postmaster that `commit_timestamps_on` restarted, which embedded_postgres
        # does not watch: none is left running after the bench.
        self.postgres.stop()


def start_infrastructure() -> Infrastructure:
    run_dir = BENCH_VAR / f"run-{os.getpid()}"
    postgres = Postgres(BENCH_VAR / "postgres")
    commit_timestamps_on(postgres)
    database = f"bench_{uuid.uuid4().hex[:12]}"
    database_url = postgres.create_database(database)
    redis = RedisServer(run_dir / "redis").start()
    infra = Infrastructure(postgres, redis, database, database_url, run_dir)
    subprocess.run(
        [sys.executable, "-m", "boxoffice_booking.cli", "migrate"],
        env=infra.env(),
        check=True,
        capture_output=True,
    )
    # The bench process itself seeds showtimes and reads results through the shared libraries.
    os.environ.update(DATABASE_URL=database_url, REDIS_URL=redis.url)
    from boxoffice_settings import get_settings

    get_settings.cache_clear()
    return infra


def commit_timestamps_on(postgres: Postgres) -> None:
    """Have the bench's cluster record when each transaction committed
    (`track_commit_timestamp`; set once, with a restart), so that scenario 4 times the pipeline
    from the payment's commit itself rather than from when the load generator read the answer.
    """
    if _setting(postgres, "track_commit_timestamp") == "on":
        return
    postgres._server.psql("ALTER SYSTEM SET track_commit_timestamp = on;")
    postgres.pg_ctl("restart", "-m", "fast", "-w")
    if _setting(postgres, "track_commit_timestamp") != "on":
        raise RuntimeError("the bench's PostgreSQL did not turn track_commit_timestamp on")


def _setting(postgres: Postgres, name: str) -> str:
    """A server setting's value, as psql prints it (the line below the header's rule)."""
    lines = postgres._server.psql(f"SHOW {name};").splitlines()
    rule = next(i for i, line in enumerate(lines) if set(line.strip()) == {"-"})
    return lines[rule + 1].strip()


class BenchSystem:
    """Every service of Boxoffice started for real, as `make run` starts them."""

    def __init__(self, infra: Infrastructure, name: str, reapers: int = 1, **env: str) -> None:
        self.infra = infra
        self.mailbox = Mailbox().start()
        self.api_port = free_port()
        self.env = infra.env(
            BOXOFFICE_API_PORT=str(self.api_port),
            BOXOFFICE_SMTP_HOST="127.0.0.1",
            BOXOFFICE_SMTP_PORT=str(self.mailbox.port),
            **env,
        )
        self.logs = infra.run_dir / name
        # BENCH_NOTIFIER_ARGS: extra `celery worker` options for the notifier, to compare
        # pools side by side (e.g. "--pool=prefork --concurrency=2").
        notifier_args = tuple(os.environ.get("BENCH_NOTIFIER_ARGS", "").split())
        self.processes: dict[str, ServiceProcess] = {
            service: ServiceProcess(
                service, module, self.env, self.logs, notifier_args if service == "notifier" else ()
            )
            for service, module in SERVICES.items()
        }
        for number in range(1, reapers + 1):
            self.processes[f"reaper-{number}"] = ServiceProcess(
                f"reaper-{number}", REAPER_MODULE, self.env, self.logs
            )

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self) -> BenchSystem:
        for process in self.processes.values():
            process.start()
        try:
            wait_for_http(self.api_url + "/readyz", timeout=90)
            for name, process in self.processes.items():
                if name == "notifier" or name.startswith("reaper"):
                    process.wait_for_log("ready.", timeout=90)
        except BaseException:
            self.stop()
            raise
        return self

    def restart(self, name: str, **env: str) -> None:
        """Restart one service with extra settings (the others keep running)."""
        old = self.processes[name]
        old.stop()
        module = old.argv[2]
        self.processes[name] = ServiceProcess(
            name, module, self.env | env, self.logs, tuple(old.argv[3:])
        ).start()
        if name == "api":
            wait_for_http(self.api_url + "/readyz", timeout=60)

    def add_reapers(self, total: int) -> None:
        """Start reaper replicas until there are `total`."""
        started = []
        for number in range(1, total + 1):
            name = f"reaper-{number}"
            if name not in self.processes:
                self.processes[name] = ServiceProcess(name, REAPER_MODULE, self.env, self.logs)
                started.append(self.processes[name].start())
        for process in started:
            process.wait_for_log("ready.", timeout=60)

    def pids(self) -> dict[str, int]:
        return {
            name: process.process.pid
            for name, process in self.processes.items()
            if process.process is not None and process.process.poll() is None
        }

    def assert_running(self) -> None:
        for process in self.processes.values():
            process.assert_running()

    def stop(self) -> None:
        # Signal every process first so that their warm shutdowns overlap.
        for process in self.processes.values():
            if process.process is not None and process.process.poll() is None:
                process.process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            process.stop()
        self.mailbox.stop()
