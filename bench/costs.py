"""Per-operation costs: CPU time of chosen processes and Redis commands over a stretch of work.

The capacity model (`bench.capacity`) is built from these figures, so the bench measures each
one beside the throughput it belongs to: CPU time per operation does not depend on what other
jobs leave of the machine, which makes it the figure that scales to other machines.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis

from bench.footprint import TICKS_PER_SECOND, cpu_seconds, process_tree


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine has spent busy since boot (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / TICKS_PER_SECOND


def bench_tree_seconds(roots: list[int]) -> float:
    """CPU seconds of this bench process and everything it started, reaped children included,
    and of the process trees of `roots` (PostgreSQL daemonises out of the bench's tree)."""
    pids = set(process_tree(os.getpid()))
    for root in roots:
        pids.update(process_tree(root))
    total = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        total += sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
    return total / TICKS_PER_SECOND


def redis_commands(redis: Redis) -> int:
    """Commands the Redis server has processed since it started."""
    stats = redis.info("stats")
    return int(stats["total_commands_processed"])


@dataclass
class CostMeter:
    """CPU seconds of named processes and Redis commands, from `start()` to `stop()`."""

    pids: dict[str, int]
    redis: Redis | None = None
    cpu: dict[str, float] = field(default_factory=dict)
    commands: int = 0
    seconds: float = 0.0
    # Cores that jobs outside this bench kept busy meanwhile: what they left is what the
    # system under test had (the capacity model's check predicts with it).
    other_jobs_cores: float = 0.0

    def start(self) -> CostMeter:
        self.cpu = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.commands = redis_commands(self.redis) if self.redis is not None else 0
        self.seconds = time.monotonic()
        self.other_jobs_cores = self._others()
        return self

    def stop(self) -> CostMeter:
        self.cpu = {name: cpu_seconds(pid) - self.cpu[name] for name, pid in self.pids.items()}
        if self.redis is not None:
            self.commands = redis_commands(self.redis) - self.commands
        self.seconds = time.monotonic() - self.seconds
        others = self._others() - self.other_jobs_cores
        self.other_jobs_cores = max(others, 0.0) / max(self.seconds, 1e-9)
        return self

    def _others(self) -> float:
        return machine_busy_seconds() - bench_tree_seconds(list(self.pids.values()))

    def cpu_ms_per(self, name: str, operations: int) -> float:
        """Milliseconds of `name`'s CPU per operation over the measured stretch."""
        return self.cpu.get(name, 0.0) * 1000 / max(operations, 1)

    def commands_per(self, operations: int) -> float:
        return self.commands / max(operations, 1)
