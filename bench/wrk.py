"""Closed-loop load with wrk and the holds.lua script."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).with_name("holds.lua")
THREADS = 2


@dataclass
class WrkResult:
    requests: int
    seconds: float
    statuses: dict[int, int]
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    def count(self, status_class: int) -> int:
        return sum(n for s, n in self.statuses.items() if s // 100 == status_class)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 2),
            "per_second": round(self.per_second, 1),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "socket_errors": self.socket_errors,
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
        }


def require_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed: `apt-get install wrk` (make bench does it)")
    return found


def run_wrk(
    url: str,
    api_key: str,
    showtimes: list[str],
    seats_per_row: int,
    rows: int,
    seconds: int,
    connections: int,
) -> WrkResult:
    """POST one fresh seat per request to `url` for `seconds` over `connections` connections."""
    argv = [
        require_wrk(),
        f"--threads={THREADS}",
        f"--connections={connections}",
        f"--duration={seconds}s",
        "--timeout=10s",
        f"--script={SCRIPT}",
        url,
        "--",
        api_key,
        uuid.uuid4().hex[:12],
        str(THREADS),
        str(seats_per_row),
        str(rows),
        *showtimes,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 60)
    line = next(x for x in done.stdout.splitlines() if x.startswith("BENCH_JSON "))
    data = json.loads(line.removeprefix("BENCH_JSON "))
    latency = data["latency_us"]
    errors = data["errors"]
    return WrkResult(
        requests=int(data["requests"]),
        seconds=data["duration_us"] / 1e6,
        statuses={int(k): int(v) for k, v in data["statuses"].items()},
        socket_errors=sum(int(errors[k]) for k in ("connect", "read", "write", "timeout")),
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
    )
