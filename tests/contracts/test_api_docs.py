"""docs/api.md stays true: its curl and Python walk-throughs run against the live API."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid

import pytest

from tests.support.catalog import make_showtime
from tests.support.live_api import LiveApi
from tests.support.stack import ROOT

pytestmark = pytest.mark.integration

DOC = ROOT / "docs" / "api.md"


def code_block(kind: str) -> str:
    """The code block that follows `<!-- tested: kind -->` in docs/api.md."""
    match = re.search(
        rf"<!-- tested: {kind} -->\n```\w+\n(.*?)\n```", DOC.read_text(), flags=re.DOTALL
    )
    assert match, f"docs/api.md has no block marked 'tested: {kind}'"
    return match.group(1)


def env_for(api: LiveApi, showtime_id: uuid.UUID) -> dict[str, str]:
    return {**os.environ, "BASE": api.base_url, "KEY": api.api_key, "SHOWTIME": str(showtime_id)}


def run_walk_through(api: LiveApi, command: list[str]) -> str:
    """Run a walk-through against a new 4x6 showtime; it must succeed. Its standard output."""
    showtime_id = make_showtime(rows=4, seats_per_row=6)
    result = subprocess.run(
        command,
        env=env_for(api, showtime_id),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_curl_walk_through_books_and_confirms_a_seat(api: LiveApi) -> None:
    script = "set -euo pipefail\n" + code_block("curl")
    lines = run_walk_through(api, ["bash", "-c", script]).strip().splitlines()
    assert lines[1].startswith("held: ")
    assert lines[2] == "['C4']"
    assert lines[-2:] == ["CONFIRMED", "CONFIRMED"]


def test_the_python_walk_through_books_and_confirms_a_seat(api: LiveApi) -> None:
    stdout = run_walk_through(api, [sys.executable, "-c", code_block("python")])
    assert "PENDING" in stdout
    assert "taken: ['A3']" in stdout
