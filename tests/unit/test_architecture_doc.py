"""docs/architecture.md names real tests, and nothing points readers outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"


def defined_tests() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        names |= set(re.findall(r"^(?:async )?def (test_\w+)", path.read_text(), re.M))
    return names


def test_every_test_the_architecture_names_exists() -> None:
    named = set(re.findall(r"`(test_\w+)`", DOC.read_text()))
    assert named, "the invariants name their tests"
    assert sorted(named - defined_tests()) == []


def test_the_readme_and_the_code_point_at_the_architecture_inside_the_repository() -> None:
    assert "docs/architecture.md" in (ROOT / "README.md").read_text()
    outside = re.compile(r"shared/DESIGN\.md|\.\./shared|design document|invariant \d", re.I)
    offenders = [
        str(path.relative_to(ROOT))
        for top in ("README.md", "docs", "libs", "services", "deploy", "tools")
        for path in ([ROOT / top] if top.endswith(".md") else (ROOT / top).rglob("*"))
        if path.suffix in {".md", ".py", ".yaml"} and outside.search(path.read_text())
    ]
    assert offenders == []


def test_every_section_the_code_points_at_exists() -> None:
    headings = set(re.findall(r"^#+ (.+)$", DOC.read_text(), re.M))
    pointer = re.compile(r'docs/architecture\.md,? "([^"]+)"')
    dangling = [
        f"{path.relative_to(ROOT)}: {section}"
        for top in ("README.md", "docs", "libs", "services", "tools")
        for path in ([ROOT / top] if top.endswith(".md") else (ROOT / top).rglob("*"))
        if path.suffix in {".md", ".py"}
        for section in pointer.findall(path.read_text())
        if section not in headings
    ]
    assert dangling == []
