"""Fixtures: a private PostgreSQL and Redis for the whole run, a clean database per session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.stack import API_KEY, Stack, start_stack


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    stack = start_stack()
    os.environ.update(
        DATABASE_URL=stack.database_url,
        REDIS_URL=stack.redis_url,
        BOXOFFICE_ENV="test",
        BOXOFFICE_BOOTSTRAP_API_KEY=API_KEY,
    )
    from boxoffice_db.migrate import upgrade_to_head
    from boxoffice_settings import get_settings

    get_settings.cache_clear()
    upgrade_to_head(stack.database_url)
    yield stack
    stack.redis.stop()
