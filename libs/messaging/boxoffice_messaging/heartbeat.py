"""Heartbeat files: touched by a loop that is alive, checked by the Kubernetes probe.

This module imports nothing heavy, so the probe (`python -m boxoffice_messaging.heartbeat`)
costs a stat() and an interpreter start, not a Celery import, every few seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def touch(path: Path) -> None:
    """Set `path`'s modification time to now, creating it if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    os.utime(path)


def heartbeat_age(path: Path, now: float | None = None) -> float | None:
    """Seconds since `path` was last touched, or None when it does not exist."""
    try:
        modified = path.stat().st_mtime
    except FileNotFoundError:
        return None
    return (time.time() if now is None else now) - modified


def is_alive(path: Path, max_age_seconds: float, now: float | None = None) -> bool:
    """True when the heartbeat file exists and was touched within `max_age_seconds`."""
    age = heartbeat_age(path, now)
    return age is not None and age <= max_age_seconds


class Heartbeat:
    """Touch a file at most every `interval_seconds`: liveness for a loop that is not Celery's."""

    def __init__(self, path: str, interval_seconds: float) -> None:
        self.path = Path(path)
        self.interval = interval_seconds
        self.last = float("-inf")

    def beat(self) -> None:
        """Call once per turn of the loop; cheap when called far more often than the interval."""
        now = time.monotonic()
        if now - self.last >= self.interval:
            touch(self.path)
            self.last = now


def main(argv: list[str] | None = None) -> int:
    """The probe: exit 0 while the heartbeat file is fresh, 1 otherwise."""
    parser = argparse.ArgumentParser(
        prog="python -m boxoffice_messaging.heartbeat",
        description="Exit 0 if the worker's heartbeat file was touched recently.",
    )
    parser.add_argument("--file", default=os.environ.get("BOXOFFICE_WORKER_LIVENESS_FILE"))
    parser.add_argument("--max-age", type=float, default=60.0, help="seconds (default 60)")
    args = parser.parse_args(argv)
    if not args.file:
        parser.error("no heartbeat file: pass --file or set BOXOFFICE_WORKER_LIVENESS_FILE")
    path = Path(args.file)
    age = heartbeat_age(path)
    if age is None:
        sys.stderr.write(f"{path}: no heartbeat yet\n")
        return 1
    if age > args.max_age:
        sys.stderr.write(f"{path}: last heartbeat {age:.0f}s ago (max {args.max_age:.0f}s)\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
