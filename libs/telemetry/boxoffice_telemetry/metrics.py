"""Prometheus exposition for every process, single- or multi-process (prefork, uvicorn workers).

prometheus_client's multiprocess mode is chosen by `PROMETHEUS_MULTIPROC_DIR` at import time:
each process writes its samples to files there and whoever serves `/metrics` sums them. Live
collectors (queue lengths, gauges read at scrape time) are added to the served registry here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, make_asgi_app, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from starlette.types import ASGIApp

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_PID_IN_FILENAME = re.compile(r"_(\d+)\.db$")

_live_collectors: list[Collector] = []


def multiprocess_dir() -> Path | None:
    """The directory multiprocess samples are written to, or None in single-process mode."""
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def prepare_multiprocess_dir() -> None:
    """Create the multiprocess directory and drop files left by earlier processes.

    Call in the parent before it forks or spawns children: every file not written by this
    process then belongs to a process that no longer exists, and summing it would count twice.
    """
    directory = multiprocess_dir()
    if directory is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    own = str(os.getpid())
    for path in directory.glob("*.db"):
        match = _PID_IN_FILENAME.search(path.name)
        if match is None or match.group(1) != own:
            path.unlink(missing_ok=True)


def process_exited(pid: int) -> None:
    """Forget the live gauges of a child that exited (its counters keep counting in the sum)."""
    if multiprocess_dir() is not None:
        mark_process_dead(pid)  # type: ignore[no-untyped-call]


def add_live_collector(collector: Collector) -> None:
    """Serve `collector` from this process's /metrics (read at scrape time, not aggregated)."""
    _live_collectors.append(collector)
    if multiprocess_dir() is None:
        REGISTRY.register(collector)


def metrics_registry() -> CollectorRegistry:
    """The registry to expose: the process's own, or the sum over all processes' files."""
    if multiprocess_dir() is None:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    for collector in _live_collectors:
        registry.register(collector)
    return registry


def metrics_asgi_app() -> ASGIApp:
    """An ASGI app serving /metrics, for mounting in the FastAPI application."""
    app: ASGIApp = make_asgi_app(registry=metrics_registry())
    return app


def serve_metrics(port: int, collectors: Iterable[Collector] = ()) -> None:
    """Serve /metrics on `port` in a background thread; port 0 disables it."""
    for collector in collectors:
        add_live_collector(collector)
    if port:
        start_http_server(port, addr="0.0.0.0", registry=metrics_registry())  # noqa: S104 - scraped from other pods
