"""Redis clients for REDIS_URL, whether it names a server or a set of Sentinels.

A plain URL (`redis://`, `rediss://`, `unix://`) goes to redis-py's `Redis.from_url`. A Sentinel
URL is the form kombu's Celery broker reads, so one REDIS_URL serves both:
`sentinel://[:password@]host:26379[/db];sentinel://host2:26379` with the master's name given
apart (BOXOFFICE_REDIS_SENTINEL_MASTER). The password and database number of the first entry
are the master's; the client asks the Sentinels for the current master on every reconnect, so a
failover needs no restart.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from boxoffice_settings import Settings
from redis import Redis
from redis.asyncio import BlockingConnectionPool
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.sentinel import Sentinel

SENTINEL_SCHEME = "sentinel"
DEFAULT_SENTINEL_PORT = 26379


def is_sentinel_url(url: str) -> bool:
    """True for the `sentinel://...;sentinel://...` form."""
    return url.strip().lower().startswith(f"{SENTINEL_SCHEME}://")


def sentinel_nodes(url: str) -> tuple[list[tuple[str, int]], str | None, int]:
    """The (host, port) of every Sentinel, the master's password and its database number."""
    nodes: list[tuple[str, int]] = []
    password: str | None = None
    db = 0
    for position, part in enumerate(p.strip() for p in url.split(";") if p.strip()):
        parts = urlsplit(part)
        if parts.scheme.lower() != SENTINEL_SCHEME or not parts.hostname:
            raise ValueError(f"not a sentinel:// URL entry: {parts.scheme}://{parts.hostname}")
        nodes.append((parts.hostname, parts.port or DEFAULT_SENTINEL_PORT))
        if position == 0:
            password = unquote(parts.password) if parts.password else None
            path = parts.path.strip("/")
            db = int(path) if path else 0
    if not nodes:
        raise ValueError("a sentinel:// URL names no Sentinel")
    return nodes, password, db


def redis_client(url: str, *, sentinel_master: str = "mymaster", **kwargs: Any) -> Redis:
    """A client for `url`; `kwargs` (timeouts...) apply to the data connections."""
    if not is_sentinel_url(url):
        return Redis.from_url(url, **kwargs)
    nodes, password, db = sentinel_nodes(url)
    # The Sentinels get the same timeouts, so an unreachable Sentinel fails as fast as Redis.
    timeouts = {k: v for k, v in kwargs.items() if k.startswith("socket_")}
    # redis-py ships redis.sentinel without annotations.
    sentinel = Sentinel(nodes, sentinel_kwargs=timeouts, **kwargs)  # type: ignore[no-untyped-call]
    client: Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        sentinel_master, db=db, password=password
    )
    return client


class BlockingSentinelConnectionPool(SentinelConnectionPool, BlockingConnectionPool):
    """A Sentinel-managed pool that waits for a free connection instead of failing."""


def async_redis_client(
    url: str,
    *,
    sentinel_master: str = "mymaster",
    max_connections: int | None = None,
    pool_timeout: float = 1.0,
    **kwargs: Any,
) -> AsyncRedis:
    """As `redis_client`, for asyncio (bind it to the event loop that uses it).

    With `max_connections`, a request past that many connections in use waits up to
    `pool_timeout` seconds for one (then a ConnectionError), where redis-py's default pool
    fails at once past 100: a burst of 1,000 holds on one API process did (issue 18).
    """
    blocking: dict[str, Any] = (
        {"max_connections": max_connections, "timeout": pool_timeout}
        if max_connections is not None
        else {}
    )
    if not is_sentinel_url(url):
        if not blocking:
            return AsyncRedis.from_url(url, **kwargs)
        return AsyncRedis.from_pool(BlockingConnectionPool.from_url(url, **blocking, **kwargs))
    nodes, password, db = sentinel_nodes(url)
    timeouts = {k: v for k, v in kwargs.items() if k.startswith("socket_")}
    sentinel = AsyncSentinel(nodes, sentinel_kwargs=timeouts, **kwargs)  # type: ignore[no-untyped-call]
    if blocking:
        blocking["connection_pool_class"] = BlockingSentinelConnectionPool
    client: AsyncRedis = sentinel.master_for(sentinel_master, db=db, password=password, **blocking)
    return client


_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def tls_options(url: str) -> dict[str, Any] | None:
    """For a `rediss://` URL, the TLS options Celery's broker and result backend need.

    redis-py verifies the server's certificate by default; Celery's broker would not (and its
    result backend refuses a rediss:// URL without `ssl_cert_reqs`). So the certificate is
    required unless the URL says otherwise (`?ssl_cert_reqs=none`), and `ssl_ca_certs`,
    `ssl_certfile` and `ssl_keyfile` in the URL apply to both.
    """
    parts = urlsplit(url.strip())
    if parts.scheme.lower() != "rediss":
        return None
    query = dict(parse_qsl(parts.query))
    reqs = query.get("ssl_cert_reqs", "required").lower().removeprefix("cert_")
    if reqs not in _CERT_REQS:
        raise ValueError(f"ssl_cert_reqs must be none, optional or required, not {reqs!r}")
    options: dict[str, Any] = {"ssl_cert_reqs": _CERT_REQS[reqs]}
    for key in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
        if query.get(key):
            options[key] = query[key]
    return options


def broker_transport_options(url: str, sentinel_master: str) -> dict[str, Any]:
    """The kombu transport options `url` needs on top of the shared ones."""
    return {"master_name": sentinel_master} if is_sentinel_url(url) else {}


def redis_from_settings(settings: Settings, **kwargs: Any) -> Redis:
    """A client for the configured REDIS_URL (and Sentinel master name)."""
    return redis_client(
        settings.redis_url, sentinel_master=settings.redis_sentinel_master, **kwargs
    )


def async_redis_from_settings(settings: Settings, **kwargs: Any) -> AsyncRedis:
    """An asyncio client for the configured REDIS_URL (and Sentinel master name)."""
    return async_redis_client(
        settings.redis_url, sentinel_master=settings.redis_sentinel_master, **kwargs
    )
