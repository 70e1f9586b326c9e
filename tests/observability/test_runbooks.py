"""Every alert's runbook exists, has its sections, and names only commands that exist."""

from __future__ import annotations

import argparse
import re
import shlex
import tomllib
from pathlib import Path

import yaml
from boxoffice_booking.admin import build_parser

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "docs/runbooks"
RULES = ROOT / "deploy/helm/boxoffice/files/prometheus/rules.yaml"
SECTIONS = ("## Symptom", "## Impact", "## Diagnosis", "## Mitigation")
# What a placeholder stands for where the parser checks the value (choices, numbers).
PLACEHOLDERS = {"<queue>": "reaper", "<n>": "2"}


def alerts() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [r["alert"] for g in groups for r in g["rules"] if "alert" in r]


def console_scripts() -> set[str]:
    found = set()
    for pyproject in ROOT.glob("services/*/pyproject.toml"):
        found |= set(tomllib.loads(pyproject.read_text())["project"].get("scripts", {}))
    return found


def commands(text: str) -> list[list[str]]:
    """Every `boxoffice-*` command line in `text` (code blocks and inline code), as argv."""
    found = []
    # Not "$REL-boxoffice-booking" (an object name): a command starts a word.
    for match in re.finditer(r"(?<![\w$/-])(boxoffice-[a-z]+(?: [^`|\n;)]*)?)", text):
        words = shlex.split(match.group(1).split("#", 1)[0])
        found.append([PLACEHOLDERS.get(w, w.replace("<", "x").replace(">", "x")) for w in words])
    return found


def test_every_alert_has_a_runbook_with_every_section() -> None:
    for alert in alerts():
        path = RUNBOOKS / f"{alert}.md"
        assert path.exists(), f"{alert} has no runbook at {path.relative_to(ROOT)}"
        text = path.read_text()
        assert text.startswith(f"# {alert}\n")
        positions = [text.find(s) for s in SECTIONS]
        assert -1 not in positions, f"{alert}: missing one of {SECTIONS}"
        assert positions == sorted(positions), f"{alert}: sections out of order"
        assert "kubectl" in text, f"{alert}: no command to diagnose with"
    strays = {p.stem for p in RUNBOOKS.glob("*.md")} - set(alerts()) - {"README"}
    assert not strays, f"runbooks of no alert: {strays}"


def test_every_boxoffice_command_in_the_runbooks_is_a_real_subcommand() -> None:
    scripts = console_scripts()
    parser = build_parser()
    checked = 0
    for path in sorted(RUNBOOKS.glob("*.md")):
        if path.name == "README.md":
            continue
        for argv in commands(path.read_text()):
            assert argv[0] in scripts, f"{path.name}: {argv[0]} is not an installed command"
            if argv[0] != "boxoffice-admin":
                continue
            try:
                args = parser.parse_args(argv[1:])
            except SystemExit as exc:  # argparse exits on an unknown subcommand or option
                raise AssertionError(f"{path.name}: {shlex.join(argv)} does not parse") from exc
            assert isinstance(args, argparse.Namespace)
            assert callable(args.run)
            checked += 1
    assert checked >= 10


def test_no_runbook_names_a_command_that_does_not_exist() -> None:
    """The old inline runbook sent operators to `boxoffice-booking dead-letters`: not a command."""
    text = "".join(p.read_text() for p in RUNBOOKS.glob("*.md"))
    assert "boxoffice-booking dead-letters" not in text
