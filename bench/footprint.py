"""Resident memory of a process and its descendants, read from /proc (Linux)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

PROC = Path("/proc")


def _children_of() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for stat in PROC.glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: parse after its closing ')'.
        fields = text[text.rindex(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return children


def process_tree(pid: int) -> list[int]:
    """`pid` and every process descended from it."""
    children = _children_of()
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def _kib(path: Path, field: str) -> int:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mib(pid: int) -> float:
    """Resident set size of a process tree (sum over its processes), in MiB."""
    return sum(_kib(PROC / str(p) / "status", "VmRSS") for p in process_tree(pid)) / 1024


def pss_mib(pid: int) -> float:
    """Proportional set size of a process tree: shared pages counted once (PostgreSQL)."""
    return sum(_kib(PROC / str(p) / "smaps_rollup", "Pss") for p in process_tree(pid)) / 1024


class PeakSampler:
    """Sample a set of processes' memory in the background and keep each one's peak."""

    def __init__(self, measure: dict[str, tuple[int, bool]], interval: float = 0.5) -> None:
        # name -> (pid, use PSS instead of RSS)
        self.measure = measure
        self.interval = interval
        self.peaks: dict[str, float] = dict.fromkeys(measure, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> dict[str, float]:
        return {
            name: (pss_mib(pid) if proportional else rss_mib(pid))
            for name, (pid, proportional) in self.measure.items()
        }

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for name, value in self.sample().items():
                self.peaks[name] = max(self.peaks[name], value)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by a process tree, exited children included.

    A child that exited counts through its parent's cutime and cstime once the parent has
    reaped it: without them, a PostgreSQL backend that ended during a measurement (a client
    closing its connections) took its whole CPU time out of the tree's total, and one run
    measured -0.96 ms of PostgreSQL CPU per payment.
    """
    total = 0
    for p in process_tree(pid):
        try:
            text = (PROC / str(p) / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        # utime, stime, cutime, cstime
        total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return total / TICKS_PER_SECOND
