"""The booking API as a real process, with its spans in a file and its log at hand.

The per-address throttle for requests without a valid key is on (BOXOFFICE_AUTH_FAILURE_LIMIT),
and the test process is a trusted proxy, so tests choose the client address they appear from
with X-Forwarded-For (a header only: every connection goes to 127.0.0.1).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.live_api import LiveApi, live_api
from tests.support.stack import Stack

AUTH_FAILURE_LIMIT = 100
NEGATIVE_CACHE = 1000


@dataclass
class Hostile:
    api: LiveApi
    traces_file: Path

    @property
    def pid(self) -> int:
        assert self.api.process.process is not None
        return self.api.process.process.pid

    def rss_mib(self) -> float:
        """The API process's resident memory, from /proc."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def log_lines(self) -> list[str]:
        return self.api.process.log().splitlines()

    def spans(self) -> list[dict[str, Any]]:
        if not self.traces_file.exists():
            return []
        return [json.loads(line) for line in self.traces_file.read_text().splitlines() if line]


def _start(stack: Stack, name: str, traced: bool) -> Iterator[Hostile]:
    traces_file = stack.var / f"security-traces-{uuid.uuid4().hex[:6]}.jsonl"
    env = {
        "BOXOFFICE_AUTH_FAILURE_LIMIT": str(AUTH_FAILURE_LIMIT),
        "BOXOFFICE_AUTH_FAILURE_WINDOW_SECONDS": "3600",
        "BOXOFFICE_NEGATIVE_KEY_CACHE_SIZE": str(NEGATIVE_CACHE),
        "BOXOFFICE_TRUSTED_PROXIES": "127.0.0.1/32,::1",
        "BOXOFFICE_LOG_LEVEL": "INFO",
    }
    if traced:
        env |= {"BOXOFFICE_TRACES_FILE": str(traces_file), "OTEL_TRACES_EXPORTER": "none"}
    else:
        env |= {"OTEL_SDK_DISABLED": "true"}
    with live_api(stack, f"{name}-{os.getpid()}", **env) as api:
        yield Hostile(api, traces_file)


@pytest.fixture(scope="package")
def hostile(stack: Stack) -> Iterator[Hostile]:
    """Untraced, as most deployments run: writing every span to a file is slow."""
    yield from _start(stack, "security-api", traced=False)


@pytest.fixture(scope="package")
def traced(stack: Stack) -> Iterator[Hostile]:
    """Every span written to a file, for tests that read them."""
    yield from _start(stack, "security-traced-api", traced=True)
