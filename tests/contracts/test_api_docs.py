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


def test_the_curl_walk_through_books_and_confirms_a_seat(api: LiveApi) -> None:
    showtime_id = make_showtime(rows=4, seats_per_row=6)
    script = "set -euo pipefail\n" + code_block("curl")
    result = subprocess.run(
        ["bash", "-c", script],
        env=env_for(api, showtime_id),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[1].startswith("held: ")
    assert lines[2] == "['C4']"
    assert lines[-2:] == ["CONFIRMED", "CONFIRMED"]


def test_the_python_walk_through_books_and_confirms_a_seat(api: LiveApi) -> None:
    showtime_id = make_showtime(rows=4, seats_per_row=6)
    result = subprocess.run(
        [sys.executable, "-c", code_block("python")],
        env=env_for(api, showtime_id),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PENDING" in result.stdout
    assert "taken: ['A3']" in result.stdout
