"""Typed FastAPI dependencies."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Annotated

from boxoffice_db.engine import get_sessionmaker
from boxoffice_settings import Settings, get_settings
from fastapi import Depends
from redis import Redis
from sqlalchemy.orm import Session

from boxoffice_booking.seat_cache import SeatCache


def get_session() -> Iterator[Session]:
    """A session per request; handlers that write commit before they answer.

    The commit is explicit so that a client never sees a success whose commit failed.
    """
    with get_sessionmaker()() as session:
        yield session


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


SeatCacheDep = Annotated[SeatCache, Depends(get_seat_cache)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
