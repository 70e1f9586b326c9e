"""Every Redis client of the services comes from one factory, so every promised URL scheme works."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from boxoffice_messaging.redis_client import is_sentinel_url, redis_client, sentinel_nodes
from redis.connection import SSLConnection
from redis.sentinel import SentinelConnectionPool

ROOT = Path(__file__).resolve().parents[2]
FACTORY = ROOT / "libs/messaging/boxoffice_messaging/redis_client.py"
# A client built by hand: `Redis.from_url(...)`, `Redis(...)`, `StrictRedis(...)`.
HAND_MADE = re.compile(r"\b(?:Async|Strict)?Redis(?:\.from_url)?\(")


def test_no_service_or_library_builds_a_redis_client_outside_the_factory() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for top in ("libs", "services")
        for path in (ROOT / top).rglob("*.py")
        if path != FACTORY and HAND_MADE.search(path.read_text())
    ]
    assert offenders == []


@pytest.mark.parametrize(
    ("url", "tls"),
    [("redis://127.0.0.1:6379/2", False), ("rediss://:pw@redis.internal:6380/0", True)],
)
def test_plain_and_tls_urls_make_a_direct_client(url: str, tls: bool) -> None:
    client = redis_client(url)
    kwargs = client.connection_pool.connection_kwargs
    assert (client.connection_pool.connection_class is SSLConnection) is tls
    assert kwargs["db"] == int(url.rsplit("/", 1)[1])


def test_a_sentinel_url_asks_the_sentinels_for_the_named_master() -> None:
    url = "sentinel://:s%40cret@10.0.0.1:26379/3;sentinel://10.0.0.2"
    assert is_sentinel_url(url)
    assert sentinel_nodes(url) == ([("10.0.0.1", 26379), ("10.0.0.2", 26379)], "s@cret", 3)
    client = redis_client(url, sentinel_master="boxoffice")
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "boxoffice"
    assert pool.connection_kwargs["db"] == 3
