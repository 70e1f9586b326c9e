"""Typed FastAPI dependencies."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Annotated, Any

import anyio
import anyio.to_thread
from boxoffice_db.aio import AsyncConn, make_async_pool
from boxoffice_db.engine import get_sessionmaker
from boxoffice_messaging.redis_client import async_redis_from_settings, redis_from_settings
from boxoffice_settings import Settings, get_settings
from boxoffice_telemetry.pg_async import trace_async_connection
from fastapi import APIRouter, Depends, Request
from psycopg_pool import AsyncConnectionPool
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from sqlalchemy.orm import Session
from starlette.types import Scope

from boxoffice_booking.seat_cache import AsyncSeatCache, SeatCache


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session per request; handlers that write commit before they answer.

    The commit is explicit so that a client never sees a success whose commit failed. The
    session is made and closed on the event loop: both are free when the handler ended its
    transaction, and a close that must roll back runs in a worker thread of its own
    (`AsyncRuntime.closers`). (A sync dependency would cost two thread-pool jobs per request.)
    A close queued behind the handlers' jobs could never run while those wait for the
    connections it would give back: 300 reads of `/v1/venues` at once hung the API.
    """
    session = get_sessionmaker()()
    try:
        yield session
    finally:
        if session.in_transaction():
            closers = runtime_of(request.app).closers
            await anyio.to_thread.run_sync(session.close, limiter=closers)
        else:
            session.close()


SessionDep = Annotated[Session, Depends(get_session)]


def ends_transaction(handler: Callable[..., Any]) -> Callable[..., Any]:
    """A sync handler that ends its session's transaction in its own thread-pool job.

    FastAPI validates a sync handler's answer in another thread-pool job, and only then
    closes the session: a handler that returned with its transaction open kept its pooled
    connection while that job queued behind handlers waiting for connections. With 40 of them
    waiting (every thread), nothing moved: 300 reads of `/v1/venues` at once hung the API
    (found while testing a burst of holds, issue 18).
    """

    @functools.wraps(handler)
    def ended(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        finally:
            for value in kwargs.values():
                if isinstance(value, Session) and value.in_transaction():
                    value.rollback()

    return ended


class SessionRouter(APIRouter):
    """An APIRouter whose sync handlers end their session's transaction (ends_transaction)."""

    def add_api_route(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = ends_transaction(endpoint)
        super().add_api_route(path, endpoint, **kwargs)


# Short timeouts: Redis only ever speeds things up (and rate-limits), never decides.
REDIS_OPTIONS: dict[str, Any] = {
    "socket_timeout": 1,
    "socket_connect_timeout": 1,
    "health_check_interval": 30,
}


# The API's asyncio Redis connections: past these, a request waits for a free one (up to the
# socket timeout) rather than failing; every request needs Redis for a millisecond or two.
ASYNC_REDIS_CONNECTIONS = 64


@lru_cache(maxsize=1)
def get_redis() -> Redis:
    """This process's Redis client (a server or a Sentinel-managed master)."""
    return redis_from_settings(get_settings(), **REDIS_OPTIONS)


@dataclass
class AsyncRuntime:
    """What the API's asyncio paths share: made and closed by the app's lifespan."""

    pool: AsyncConnectionPool
    redis: AsyncRedis
    seat_cache: AsyncSeatCache
    # API key lookups in flight, by key hash: a burst of one key waits for one lookup
    # (boxoffice_booking.auth).
    key_lookups: dict[str, asyncio.Future[Any]] = field(default_factory=dict)
    # Threads for closing sessions, apart from the handlers' (see get_session).
    closers: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(8))

    @classmethod
    def from_settings(cls, settings: Settings) -> AsyncRuntime:
        redis = async_redis_from_settings(
            settings, max_connections=ASYNC_REDIS_CONNECTIONS, **REDIS_OPTIONS
        )
        pool = make_async_pool(
            settings.database_url,
            settings.service_name,
            settings.db_pool_size,
            prepared_statements=settings.database_prepared_statements,
            configure=trace_async_connection,
        )
        return cls(pool, redis, AsyncSeatCache(redis, settings.seat_cache_ttl_seconds))

    async def open(self) -> None:
        await self.pool.open()

    async def close(self) -> None:
        await self.pool.close()
        await self.redis.aclose()


# A request's one pooled connection, from its Idempotency-Key claim to its stored answer, lent
# to a handler on the event loop (the hold): one checkout, and one liveness check, instead of
# three. A middleware that wants it lent sets BORROWS_CONNECTION (boxoffice_booking.hold_guard).
BORROWS_CONNECTION = "boxoffice.borrows_connection"
LENT_CONNECTION = "boxoffice.lent_connection"
# A hold the guard has reserved (its `seat_cache.HOLD_REQUEST` set) goes straight to its
# statement, so that statement can claim the Idempotency-Key itself: the middleware then lends
# the connection with the claim to make (KEY_CLAIM, a `holds.KeyClaim`), one round trip fewer.
KEY_CLAIM = "boxoffice.key_claim"


def connection_for(
    scope: Scope, pool: AsyncConnectionPool
) -> contextlib.AbstractAsyncContextManager[AsyncConn]:
    """The connection lent to this request, or a pooled one of its own."""
    lent: AsyncConn | None = scope.get(LENT_CONNECTION)
    if lent is not None:
        return contextlib.nullcontext(lent)
    return pool.connection()


def runtime_of(app: Any) -> AsyncRuntime:
    runtime: AsyncRuntime | None = getattr(app.state, "runtime", None)
    if runtime is None:
        raise RuntimeError("the app's lifespan has not started (no asyncio runtime)")
    return runtime


async def get_runtime(request: Request) -> AsyncRuntime:
    return runtime_of(request.app)


RuntimeDep = Annotated[AsyncRuntime, Depends(get_runtime)]


@lru_cache(maxsize=1)
def get_seat_cache() -> SeatCache:
    return SeatCache(get_redis(), get_settings().seat_cache_ttl_seconds)


# Async wrappers: FastAPI runs a plain `def` dependency in the thread pool, one job each.
async def seat_cache_dep() -> SeatCache:
    return get_seat_cache()


async def settings_dep() -> Settings:
    return get_settings()


SeatCacheDep = Annotated[SeatCache, Depends(seat_cache_dep)]
SettingsDep = Annotated[Settings, Depends(settings_dep)]
