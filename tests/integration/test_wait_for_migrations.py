"""`python -m boxoffice_db.migrate --wait`, the chart's wait-for-migrations init container, as a
real process against a real PostgreSQL, reached by its parts as the chart passes them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

from boxoffice_db.migrate import upgrade_to_head

from tests.support.stack import Stack


def wait_command(stack: Stack, database: str, timeout: float) -> subprocess.Popen[str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BOXOFFICE_DATABASE_URL")
    }
    env.update(
        REDIS_URL=stack.redis_url,
        BOXOFFICE_DATABASE_HOST=stack.postgres.socket_dir,
        BOXOFFICE_DATABASE_USER="postgres",
        BOXOFFICE_DATABASE_NAME=database,
    )
    argv = [sys.executable, "-m", "boxoffice_db.migrate", "--wait", "--timeout", str(timeout)]
    return subprocess.Popen(
        [*argv, "--interval", "0.2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(waiting: subprocess.Popen[str]) -> str:
    """Let the waiting command end on its own (killed after a minute); its standard error."""
    try:
        _, err = waiting.communicate(timeout=60)
    finally:
        waiting.kill()
        waiting.wait()
    return err


def test_wait_for_migrations_returns_once_the_schema_reaches_head(stack: Stack) -> None:
    database = f"wait_{uuid.uuid4().hex[:10]}"
    url = stack.postgres.create_database(database)
    waiting = wait_command(stack, database, timeout=120)
    try:
        assert waiting.stderr is not None
        first = waiting.stderr.readline()  # blocks until it has looked at the database once
        assert first.startswith("waiting for migrations: schema at no revision"), first
        time.sleep(1)
        assert waiting.poll() is None, "stopped waiting before any migration ran"
        upgrade_to_head(url)
        out, err = waiting.communicate(timeout=60)
        assert waiting.returncode == 0, first + err
        assert "schema at head" in out
    finally:
        waiting.kill()
        waiting.wait()


def test_wait_for_migrations_fails_when_its_timeout_passes(stack: Stack) -> None:
    database = f"wait_{uuid.uuid4().hex[:10]}"
    stack.postgres.create_database(database)
    waiting = wait_command(stack, database, timeout=1)
    err = finish(waiting)
    assert waiting.returncode == 1
    assert "giving up" in err


def test_wait_for_migrations_is_immediate_on_a_migrated_database(stack: Stack) -> None:
    # The session's database is at head already (the stack fixture migrated it).
    database = stack.database_url.split("/")[3].split("?")[0]
    waiting = wait_command(stack, database, timeout=30)
    err = finish(waiting)
    assert waiting.returncode == 0, err
    assert "waiting" not in err
