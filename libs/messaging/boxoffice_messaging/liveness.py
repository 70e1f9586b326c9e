"""Worker liveness that means "still consuming": a heartbeat file touched by the event loop.

A Celery worker's process can outlive its ability to consume: a lost broker connection that
never comes back, a wedged event loop. A Kubernetes probe that only checks the process exists
sees nothing wrong. Here a consumer bootstep registers a repeating timer on the worker's event
loop, the same loop that fetches and acknowledges messages, and that timer touches a file.
While the loop turns, the file stays fresh; when it stops turning, or the consumer is down
reconnecting, the file goes stale and `python -m boxoffice_messaging.liveness` (the probe's
command) fails. The check is a stat(), cheap enough to run every few seconds, unlike starting
a second Celery client for `celery inspect ping`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from celery import Celery, bootsteps

LIVENESS_FILE_KEY = "boxoffice_liveness_file"
LIVENESS_INTERVAL_KEY = "boxoffice_liveness_interval_seconds"


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


class LivenessFile(bootsteps.StartStopStep):
    """Consumer bootstep: touch the heartbeat file from the consumer's event loop."""

    # After Tasks: the file only appears once the worker consumes its queues.
    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        conf = parent.app.conf
        path = conf.get(LIVENESS_FILE_KEY)
        self.enabled = bool(path)
        self.path = Path(path) if path else None
        self.interval = float(conf.get(LIVENESS_INTERVAL_KEY) or 5.0)
        self.entry: Any = None
        super().__init__(parent, **kwargs)

    def start(self, parent: Any) -> None:
        assert self.path is not None
        path = self.path
        touch(path)
        self.entry = parent.timer.call_repeatedly(self.interval, touch, (path,))

    def stop(self, parent: Any) -> None:
        if self.entry is not None:
            parent.timer.cancel(self.entry)
            self.entry = None

    shutdown = stop


def install_liveness_file(app: Celery, path: str, interval_seconds: float) -> None:
    """Make every worker of `app` keep `path` fresh while its consumer runs."""
    app.conf[LIVENESS_FILE_KEY] = path
    app.conf[LIVENESS_INTERVAL_KEY] = interval_seconds
    app.steps["consumer"].add(LivenessFile)


def main(argv: list[str] | None = None) -> int:
    """The probe: exit 0 while the heartbeat file is fresh, 1 otherwise."""
    parser = argparse.ArgumentParser(
        prog="python -m boxoffice_messaging.liveness",
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
