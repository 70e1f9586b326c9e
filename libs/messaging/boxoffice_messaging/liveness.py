"""Worker liveness that means "still consuming": a heartbeat file touched by the event loop.

A Celery worker's process can outlive its ability to consume: a lost broker connection that
never comes back, a wedged event loop. A Kubernetes probe that only checks the process exists
sees nothing wrong. Here a consumer bootstep registers a repeating timer on the worker's event
loop, the same loop that fetches and acknowledges messages, and that timer touches a file.
While the loop turns, the file stays fresh; when it stops turning, or the consumer is down
reconnecting, the file goes stale and `python -m boxoffice_messaging.heartbeat` (the probe's
command) fails. The check is a stat(), cheap enough to run every few seconds, unlike starting
a second Celery client for `celery inspect ping`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import Celery, bootsteps

from boxoffice_messaging.heartbeat import touch

LIVENESS_FILE_KEY = "boxoffice_liveness_file"
LIVENESS_INTERVAL_KEY = "boxoffice_liveness_interval_seconds"


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
