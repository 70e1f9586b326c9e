"""A test run stops what it starts: no embedded PostgreSQL is left running after pytest exits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from boxoffice_devstack.servers import Postgres

from tests.support.stack import ROOT

pytestmark = pytest.mark.integration

# A light test that starts the whole stack (PostgreSQL, migrations, Redis).
PROBE = (
    "tests/integration/test_telemetry_collectors.py::test_dead_letter_count_never_fails_a_scrape"
)


def postmasters(data_dir: Path) -> list[int]:
    """Processes running `postgres -D <data_dir>`, from /proc (whatever started them)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"postgres") and str(data_dir).encode() in argv:
            found.append(int(entry.name))
    return found


def run_pytest(var: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BOXOFFICE_TEST_VAR": str(var)}
    for name in ("DATABASE_URL", "REDIS_URL"):
        env.pop(name, None)  # the run makes its own
    return subprocess.run(
        [sys.executable, "-m", "pytest", PROBE, "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def gone_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_pytest_run_leaves_no_postgresql_running(tmp_path: Path) -> None:
    var = tmp_path / "var"
    data_dir = (var / "postgres").resolve()
    first = run_pytest(var)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert (data_dir / "PG_VERSION").exists(), "the run used this cluster"
    assert postmasters(data_dir) == []

    # A run killed earlier left its handle in the cluster's list: the next one stops it anyway.
    (data_dir / ".handle_pids.json").write_text(f"[{gone_pid()}]")
    second = run_pytest(var)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert postmasters(data_dir) == []


def test_a_postgresql_restarted_under_the_tests_is_stopped_too(tmp_path: Path) -> None:
    """`make chaos` restarts PostgreSQL with pg_ctl: the new postmaster must not outlive it."""
    postgres = Postgres(tmp_path / "postgres")
    data_dir = postgres.data_dir.resolve()
    postgres.pg_ctl("restart", "-m", "fast", "-w")
    assert postmasters(data_dir), "the restarted server runs"
    postgres.stop()
    assert postmasters(data_dir) == []
