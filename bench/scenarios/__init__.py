"""The five scenarios; each returns a ScenarioResult with its figures beside a baseline."""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.config import Sizes
from bench.system import BenchSystem, Infrastructure


@dataclass
class Context:
    """What a scenario runs against."""

    infra: Infrastructure
    sizes: Sizes
    api_key: str
    system: BenchSystem
    baseline_url: str


def say(message: str) -> None:
    """A progress line, so a long run shows where it is."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline else float("nan")
