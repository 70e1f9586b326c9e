"""Fixtures: a private PostgreSQL and Redis for the whole run, a clean database per session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.stack import Stack, start_stack


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    stack = start_stack()
    os.environ.update(stack.settings_env())
    os.environ.update(
        # Every test holds with the one bootstrap client; tests of the limit set their own.
        BOXOFFICE_MAX_ACTIVE_HOLDS_PER_CLIENT="0",
    )
    from boxoffice_db.migrate import upgrade_to_head
    from boxoffice_settings import get_settings

    get_settings.cache_clear()
    upgrade_to_head(stack.database_url)
    yield stack
    stack.stop()
