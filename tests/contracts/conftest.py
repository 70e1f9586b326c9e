"""One live booking API process shared by the contract and client tests of this package."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.faulty_proxy import FaultyProxy
from tests.support.live_api import LiveApi, live_api
from tests.support.stack import Stack


@pytest.fixture(scope="package")
def api(stack: Stack) -> Iterator[LiveApi]:
    with live_api(stack, "contracts-api") as running:
        yield running


@pytest.fixture
def proxy(api: LiveApi) -> Iterator[FaultyProxy]:
    """A faulty proxy in front of the API: a test injects the faults it wants."""
    proxy = FaultyProxy(api.base_url).start()
    yield proxy
    proxy.stop()
