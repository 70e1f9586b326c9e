"""Real PostgreSQL and Redis for the tests, started privately so tests can restart them."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from boxoffice_devstack.servers import Postgres, RedisServer

ROOT = Path(__file__).resolve().parents[2]
TEST_VAR = ROOT / "var" / "test"
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

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a service process of this stack."""
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            BOXOFFICE_ENV="test",
            BOXOFFICE_BOOTSTRAP_API_KEY=API_KEY,
            BOXOFFICE_LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
            # Service processes of a test run share one API key; tests of the limit set their own.
            BOXOFFICE_RATE_LIMIT_REQUESTS="0",
        )
        env.update(extra)
        return env


def start_stack() -> Stack:
    """Embedded PostgreSQL (cluster reused across runs, fresh database each run) and Redis."""
    TEST_VAR.mkdir(parents=True, exist_ok=True)
    postgres = Postgres(TEST_VAR / "postgres")
    database_url = postgres.create_database(f"test_{uuid.uuid4().hex[:12]}")
    run_dir = TEST_VAR / f"run-{os.getpid()}"
    redis = RedisServer(run_dir / "redis").start()
    return Stack(postgres=postgres, redis=redis, database_url=database_url, var=run_dir)
