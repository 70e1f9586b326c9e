"""Typed FastAPI dependencies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import lru_cache
from typing import Annotated

from boxoffice_db.engine import get_sessionmaker
from boxoffice_settings import Settings, get_settings
from fastapi import Depends
from redis import Redis
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from boxoffice_booking.seat_cache import SeatCache


async def get_session() -> AsyncIterator[Session]:
    """A session per request; handlers that write commit before they answer.

    The commit is explicit so that a client never sees a success whose commit failed. The
    session is made and closed on the event loop: both are free when the handler ended its
    transaction, as every handler does, and a close that must roll back runs in a worker
    thread. (A sync dependency would cost two thread-pool jobs per request, and a session
    waiting for a free thread to give back its connection can starve the pool.)
    """
    session = get_sessionmaker()()
    try:
        yield session
    finally:
        if session.in_transaction():
            await run_in_threadpool(session.close)
        else:
            session.close()


SessionDep = Annotated[Session, Depends(get_session)]


@lru_cache(maxsize=1)
def get_redis() -> Redis:
    """This process's Redis client; short timeouts, since Redis only ever speeds things up."""
    return Redis.from_url(
        get_settings().redis_url,
        socket_timeout=1,
        socket_connect_timeout=1,
        health_check_interval=30,
    )


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
