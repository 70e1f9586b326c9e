"""What the numbers were measured on: CPUs, load, versions, commit, date."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from boxoffice_messaging.redis_client import redis_client

from bench.system import ROOT, Infrastructure


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return float("nan")


def _command_output(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=10)
    except OSError:
        return "unknown"
    return (
        (done.stdout or done.stderr).strip().splitlines()[0] if done.stdout or done.stderr else ""
    )


def describe_machine(infra: Infrastructure, kind: str) -> dict[str, Any]:
    postgres = infra.postgres._server.psql("SHOW server_version;").split("\n")
    postgres_version = next((line.strip() for line in postgres[2:] if line.strip()), "unknown")
    with redis_client(infra.redis.url) as redis:
        redis_version = str(redis.info("server")["redis_version"])
    versions = {
        "Python": platform.python_version(),
        "PostgreSQL": postgres_version,
        "Redis": redis_version,
    }
    for package in ("fastapi", "uvicorn", "sqlalchemy", "psycopg", "celery", "kombu", "redis"):
        versions[package] = version(package)
    versions["wrk"] = _command_output(["wrk", "--version"]).split(" [")[0].removeprefix("wrk ")
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "kind": kind,
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "platform": platform.platform(),
        "commit": _command_output(["git", "log", "-1", "--format=%h %s"]),
        "versions": versions,
        "seconds": 0.0,
    }
