"""A Redis channel whose connection is gone fails as a connection error, not AttributeError.

When a worker's broker connection breaks, Celery 5.7 first collects it, which detaches kombu's
transport from it (`transport.client = None`), then closes it; and a task that finishes a
moment later acknowledges its message through the same, now detached, channel. Both need a
Redis client; kombu (5.7) builds one from `transport.client` and raises AttributeError on
None. Celery handles connection errors there (the ack is logged as failed, the close ignored)
but not AttributeError: "Unrecoverable error", and the worker stops for good. `make test`'s
chaos run lost its reaper so, after a one-second Redis restart: holds stopped expiring and
refunds stopped settling.

`install` makes the detached channel raise redis-py's ConnectionError instead, which every
one of those paths already handles. It also keeps one synchronous Redis client per channel
and connection pool: kombu built a new `redis.Redis` (about 50 µs: its response-callback
table) for every message a worker took, acknowledged or published. The client holds no
connection of its own (each command takes one from the pool), so sharing it changes nothing
else; a new pool (after a reconnect) gets a new client.

And it reads kombu's cached properties without a lock once they are cached. kombu's
`cached_property` (5.7) takes one lock per property, shared by every instance, on every read:
it is a data descriptor, so even a cached value goes through `__get__`, and on Python 3.11 the
lock is taken before the cache is looked at. A notifier's 32 threads and its consumer loop read
the channel's `client` and the QoS keys for every message, so they queued on those locks (and
handed the GIL back and forth to do so). Python 3.12's own `functools.cached_property` dropped
its lock for that reason; kombu's still computes a missing value under it, as before.

Nothing is lost: a message whose ack failed stays in kombu's unacknowledged set and comes back
after the visibility timeout; every task is idempotent.
`tests/integration/test_worker_broker_restart.py` restarts Redis under a busy reaper (without
this, it stops at the first or second restart).
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.utils import objects as kombu_objects
from redis.exceptions import ConnectionError as RedisConnectionError

# kombu ships no annotations for its Redis channel: the method is reached through its class dict.
_original_connparams = vars(kombu_redis.Channel)["_connparams"]


def _connparams(self: Any, asynchronous: bool = False) -> Any:
    transport = self.connection
    if transport is None or transport.client is None:
        raise RedisConnectionError("this channel's broker connection was closed")
    return _original_connparams(self, asynchronous=asynchronous)


_original_create_client = vars(kombu_redis.Channel)["_create_client"]


def _create_client(self: Any, asynchronous: bool = False) -> Any:
    if asynchronous:
        return _original_create_client(self, asynchronous=True)
    pool = self.pool
    cached = self.__dict__.get("_boxoffice_client")
    if cached is not None and cached.connection_pool is pool:
        return cached
    client = _original_create_client(self)
    self._boxoffice_client = client
    return client


_locked_get = kombu_objects.cached_property.__get__


def _cached_get(self: Any, instance: Any, owner: Any = None) -> Any:
    if instance is not None:
        cached = instance.__dict__.get(self.attrname, _MISSING)
        if cached is not _MISSING:
            return cached
    return _locked_get(self, instance, owner)


_MISSING = object()


def install() -> None:
    """Patch kombu's Redis channel (idempotent; the Sentinel channel inherits it) and its
    cached properties' reads."""
    kombu_redis.Channel._connparams = _connparams  # type: ignore[attr-defined]
    kombu_redis.Channel._create_client = _create_client  # type: ignore[attr-defined]
    kombu_objects.cached_property.__get__ = _cached_get  # type: ignore[method-assign]
