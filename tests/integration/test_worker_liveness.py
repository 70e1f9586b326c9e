"""The worker liveness probe: fresh while the worker's event loop consumes, stale when it stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from boxoffice_messaging.heartbeat import Heartbeat, heartbeat_age, is_alive, main

from tests.support.processes import ServiceProcess, wait_until
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


def probe(path: Path, max_age: float) -> int:
    """Run the probe exactly as the pod's exec probe does, in its own process."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "boxoffice_messaging.heartbeat",
            "--file",
            str(path),
            "--max-age",
            str(max_age),
        ],
        capture_output=True,
        check=False,
        timeout=30,
    ).returncode


def with_heartbeat(stack: Stack, name: str, module: str) -> tuple[Path, ServiceProcess]:
    """A service process (not started) that beats every 0.5 s into a fresh heartbeat file."""
    heartbeat = stack.var / "liveness" / f"{name}-{os.getpid()}"
    heartbeat.unlink(missing_ok=True)
    env = stack.env(
        BOXOFFICE_WORKER_LIVENESS_FILE=str(heartbeat),
        BOXOFFICE_WORKER_LIVENESS_INTERVAL_SECONDS="0.5",
    )
    return heartbeat, ServiceProcess(f"{name}-liveness", module, env, stack.var / "logs")


def freeze_until_stale_then_thaw(process: subprocess.Popen[bytes], heartbeat: Path) -> None:
    """SIGSTOP `process` until the probe fails on its heartbeat; SIGCONT until it passes again."""
    process.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: probe(heartbeat, max_age=3) == 1, 30, "a stale heartbeat")
    finally:
        process.send_signal(signal.SIGCONT)
    wait_until(lambda: probe(heartbeat, max_age=3) == 0, 30, "a fresh heartbeat")


def test_probe_fails_without_a_heartbeat_file(tmp_path: Path) -> None:
    assert main(["--file", str(tmp_path / "missing"), "--max-age", "60"]) == 1
    assert heartbeat_age(tmp_path / "missing") is None


def test_probe_fails_when_the_heartbeat_is_older_than_max_age(tmp_path: Path) -> None:
    path = tmp_path / "heartbeat"
    path.touch()
    old = time.time() - 120
    os.utime(path, (old, old))
    assert not is_alive(path, max_age_seconds=60)
    assert main(["--file", str(path), "--max-age", "60"]) == 1
    assert main(["--file", str(path), "--max-age", "180"]) == 0


def test_worker_heartbeat_is_fresh_while_consuming_stale_when_frozen_and_sigterm_is_warm(
    stack: Stack,
) -> None:
    heartbeat, worker = with_heartbeat(stack, "reaper", "boxoffice_reaper.main")
    worker.start()
    try:
        worker.wait_for_log("ready.")
        wait_until(heartbeat.exists, 30, "the heartbeat file")
        first = heartbeat.stat().st_mtime
        # The timer keeps touching it: the modification time moves on.
        wait_until(lambda: heartbeat.stat().st_mtime > first, 15, "a second heartbeat")
        assert probe(heartbeat, max_age=5) == 0

        # A frozen worker (its event loop no longer turns) must fail the probe; thawed, it
        # consumes again and the probe passes again.
        assert worker.process is not None
        freeze_until_stale_then_thaw(worker.process, heartbeat)
        worker.assert_running()
        # SIGTERM, as Kubernetes sends it to PID 1: a warm shutdown and a clean exit.
        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(60) == 0
        assert "Warm shutdown" in worker.log()
    finally:
        worker.stop()


def test_heartbeat_touches_at_most_once_an_interval(tmp_path: Path) -> None:
    path = tmp_path / "relay"
    heartbeat = Heartbeat(str(path), interval_seconds=3600)
    heartbeat.beat()
    old = time.time() - 100
    os.utime(path, (old, old))
    heartbeat.beat()  # within the interval: no second touch
    assert not is_alive(path, max_age_seconds=50)
    Heartbeat(str(path), interval_seconds=0.001).beat()
    assert is_alive(path, max_age_seconds=50)


def test_relay_heartbeat_goes_stale_when_its_loop_stops(stack: Stack) -> None:
    heartbeat, relay = with_heartbeat(stack, "relay", "boxoffice_booking.relay")
    relay.start()
    try:
        wait_until(lambda: probe(heartbeat, max_age=3) == 0, 30, "the relay's heartbeat")
        assert relay.process is not None
        freeze_until_stale_then_thaw(relay.process, heartbeat)
        relay.assert_running()
    finally:
        relay.stop()
