"""Service processes started for real, as `make run` starts them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx


class ServiceProcess:
    """One service as its own OS process, with its output in a log file."""

    def __init__(
        self, name: str, module: str, env: dict[str, str], log_dir: Path, args: tuple[str, ...] = ()
    ) -> None:
        self.name = name
        self.argv = [sys.executable, "-m", module, *args]
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        return self

    def stop(self, timeout: float = 20) -> None:
        """Warm shutdown with SIGTERM; SIGKILL if it does not exit in time."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def kill(self) -> None:
        """`kill -9`: no chance to clean up."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, needle: str, timeout: float = 120) -> None:
        wait_until(lambda: needle in self.log(), timeout, f"{self.name}: {needle!r} in its log")

    def assert_running(self) -> None:
        assert self.process is not None
        assert self.process.poll() is None, f"{self.name} exited:\n{self.log()[-3000:]}"


def wait_until(
    check: Callable[[], object], timeout: float, what: str, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# Generous: on a shared 2-core machine a Python service can take a minute just to import.
def wait_for_http(url: str, timeout: float = 120) -> None:
    wait_until(lambda: httpx.get(url, timeout=1).status_code == 200, timeout, url)
