"""The results table (printed, and written to docs/benchmarks.md) and the JSON under var/bench/."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.stats import Goal


@dataclass
class Row:
    metric: str
    value: str
    baseline: str = ""
    ratio: str = ""
    goal: Goal | None = None


@dataclass
class ScenarioResult:
    key: str
    title: str
    rows: list[Row] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    # Correctness checks that failed (winners != 10, a 5xx, a lost email): never a "goal".
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def goals(self) -> list[Goal]:
        return [row.goal for row in self.rows if row.goal is not None]

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "data": self.data,
            "goals": [goal.as_dict() for goal in self.goals],
            "failures": self.failures,
            "notes": self.notes,
        }


def number(value: float, digits: int = 1) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:,.{digits}f}"


def verdict(goal: Goal | None) -> str:
    if goal is None:
        return ""
    return "met" if goal.met else "**MISSED**"


def goal_text(goal: Goal | None) -> str:
    if goal is None:
        return ""
    return f"{'≤' if goal.at_most else '≥'} {goal.target:g}{goal.unit}"


def markdown_table(results: list[ScenarioResult]) -> str:
    lines = [
        "| scenario | metric | Boxoffice | baseline | ratio | goal | verdict |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for result in results:
        for i, row in enumerate(result.rows):
            title = result.title if i == 0 else ""
            lines.append(
                f"| {title} | {row.metric} | {row.value} | {row.baseline} | {row.ratio} "
                f"| {goal_text(row.goal)} | {verdict(row.goal)} |"
            )
    return "\n".join(lines)


def goals_summary(results: list[ScenarioResult]) -> list[str]:
    lines = []
    for result in results:
        for goal in result.goals:
            state = "met" if goal.met else "MISSED"
            lines.append(
                f"- {state}: {result.title}, {goal.what}: {number(goal.measured, 2)}{goal.unit} "
                f"(goal {goal_text(goal)})"
            )
        lines.extend(f"- FAILED CHECK: {result.title}: {failure}" for failure in result.failures)
    return lines


def write_json(path: Path, machine: dict[str, Any], results: list[ScenarioResult]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "machine": machine,
        "scenarios": {result.key: result.as_dict() for result in results},
        "goals_met": all(g.met for r in results for g in r.goals),
        "checks_passed": not any(r.failures for r in results),
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")


def render_markdown(machine: dict[str, Any], results: list[ScenarioResult], json_name: str) -> str:
    versions = ", ".join(f"{name} {version}" for name, version in machine["versions"].items())
    notes = [f"- {result.title}: {note}" for result in results for note in result.notes]
    return "\n".join(
        [
            "## Results",
            "",
            f"- date: {machine['date']} ({machine['kind']} run, {machine['seconds']:.0f} s)",
            f"- machine: {machine['cpu_count']} CPUs ({machine['cpu_model']}), "
            f"{machine['memory_gib']:.1f} GiB RAM, load average at start "
            f"{machine['load_average']}, at the end {machine.get('load_average_end', 'n/a')} "
            "(other jobs share the machine)",
            f"- commit: {machine['commit']}",
            f"- versions: {versions}",
            f"- machine-readable: `var/bench/{json_name}` (not committed)",
            "",
            markdown_table(results),
            "",
            "### Goals",
            "",
            *goals_summary(results),
            "",
            "### Notes from this run",
            "",
            *(notes or ["- none"]),
            "",
        ]
    )
