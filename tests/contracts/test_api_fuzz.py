"""Schemathesis against the live API: whatever it sends, no 5xx and every response is documented.

The committed docs/openapi.json is what is tested (another test proves it is what the app
serves), against `boxoffice-api` running as a real process on PostgreSQL and Redis. The
documented example showtime is mapped to a real one seeded here, so the examples phase and the
stateful phase (which follows the document's links from a created booking to reading, paying
and cancelling it) reach the happy path, not only 404s.

`make test` runs a bounded number of examples per operation with a fixed seed;
`make fuzz` runs many more with a fresh seed (BOXOFFICE_FUZZ_EXAMPLES, BOXOFFICE_FUZZ_SEED).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from boxoffice_booking.openapi_examples import SHOWTIME_ID

from tests.support.catalog import make_showtime
from tests.support.live_api import LiveApi
from tests.support.stack import ROOT, Stack

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("BOXOFFICE_FUZZ_EXAMPLES", "15"))
SEED = os.environ.get("BOXOFFICE_FUZZ_SEED", "" if "BOXOFFICE_FUZZ_EXAMPLES" in os.environ else "9")


def test_no_input_makes_the_api_fail_or_break_its_contract(
    api: LiveApi, stack: Stack, tmp_path: Path
) -> None:
    showtime_id = make_showtime(rows=4, seats_per_row=10)
    document = (ROOT / "docs" / "openapi.json").read_text()
    schema = tmp_path / "openapi.json"
    schema.write_text(document.replace(SHOWTIME_ID, str(showtime_id)))
    reports = stack.var / "schemathesis"
    argv = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(Path(__file__).with_name("schemathesis.toml")),
        "run",
        str(schema),
        "--url",
        api.base_url,
        "--max-examples",
        str(EXAMPLES),
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--report",
        "junit",
        "--report-dir",
        str(reports),
        "--no-color",
    ]
    if SEED:
        argv += ["--seed", SEED]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.contracts.fuzz_hooks",
        "BOXOFFICE_FUZZ_API_KEY": api.api_key,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        argv, capture_output=True, text=True, check=False, timeout=1200, cwd=tmp_path, env=env
    )
    output = result.stdout + result.stderr
    print(output)
    api_log = api.process.log()[-5000:]
    assert result.returncode == 0, f"{output[-20000:]}\n--- API log ---\n{api_log}"
