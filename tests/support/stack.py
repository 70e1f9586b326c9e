"""Real PostgreSQL and Redis for the tests, started privately so tests can restart them."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from boxoffice_devstack.servers import Postgres, RedisServer

ROOT = Path(__file__).resolve().parents[2]
# BOXOFFICE_TEST_VAR: another place for the test servers (the test that checks a run stops
# its PostgreSQL runs pytest in a directory of its own).
TEST_VAR = Path(os.environ.get("BOXOFFICE_TEST_VAR") or ROOT / "var" / "test")
API_KEY = "bo_test_" + "k" * 40


@dataclass
class Stack:
    postgres: Postgres
    redis: RedisServer
    database_url: str
    var: Path

    @property
    def redis_url(self) -> str:
        return self.redis.url

    def stop(self) -> None:
        """Stop Redis and PostgreSQL: a test run leaves no server behind."""
        self.redis.stop()
        self.postgres.stop()

    def settings_env(self) -> dict[str, str]:
        """The settings that point a process at this stack, as a test environment with its key."""
        return {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "BOXOFFICE_ENV": "test",
            "BOXOFFICE_BOOTSTRAP_API_KEY": API_KEY,
        }

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a service process of this stack."""
        env = dict(os.environ)
        env.update(self.settings_env())
        env.update(
            BOXOFFICE_LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
            # Service processes of a test run share one API key; tests of the limit set their own.
            BOXOFFICE_RATE_LIMIT_REQUESTS="0",
            BOXOFFICE_AUTH_FAILURE_LIMIT="0",
            BOXOFFICE_MAX_ACTIVE_HOLDS_PER_CLIENT="0",
        )
        env.update(extra)
        return env

    def system_env(self, api_port: int, smtp_port: int, **extra: str) -> dict[str, str]:
        """`env` for a whole system: the API on `api_port`, mail to the local SMTP server."""
        return self.env(
            BOXOFFICE_API_PORT=str(api_port),
            BOXOFFICE_SMTP_HOST="127.0.0.1",
            BOXOFFICE_SMTP_PORT=str(smtp_port),
            **extra,
        )


def start_stack() -> Stack:
    """Embedded PostgreSQL (cluster kept on disk across runs, fresh database each run, server
    stopped at the end: `Stack.stop`) and Redis."""
    TEST_VAR.mkdir(parents=True, exist_ok=True)
    postgres = Postgres(TEST_VAR / "postgres")
    database_url = postgres.create_database(f"test_{uuid.uuid4().hex[:12]}")
    run_dir = TEST_VAR / f"run-{os.getpid()}"
    redis = RedisServer(run_dir / "redis").start()
    return Stack(postgres=postgres, redis=redis, database_url=database_url, var=run_dir)
