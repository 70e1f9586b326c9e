"""API keys: random tokens given once to the client, stored only as SHA-256 hashes.

A key's scopes are looked up at most every few seconds per process (a revoked key stops
working within `KEY_CACHE_SECONDS`), and each key has a request budget per window in Redis.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from boxoffice_db.engine import session_scope
from boxoffice_db.models import ApiKey
from fastapi import Depends, Header
from redis import RedisError
from redis.asyncio import Redis as AsyncRedis
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session
from sqlalchemy.sql import func
from starlette.concurrency import run_in_threadpool

from boxoffice_booking.deps import RuntimeDep, SettingsDep
from boxoffice_booking.problems import Forbidden, RateLimited, Unauthorized

log = logging.getLogger(__name__)

SCOPES = ("bookings:read", "bookings:write", "catalog:write", "admin")
KEY_PREFIX = "bo_"
KEY_CACHE_SECONDS = 5.0


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def create_api_key(session: Session, name: str, scopes: list[str], key: str | None = None) -> str:
    """Store a key's hash with its scopes and return the key (shown to its owner once)."""
    key = key or generate_key()
    session.execute(
        insert(ApiKey)
        .values(name=name, key_hash=hash_key(key), scopes=scopes)
        .on_conflict_do_nothing(index_elements=[ApiKey.key_hash])
    )
    return key


@dataclass(frozen=True)
class ApiKeyInfo:
    id: uuid.UUID
    name: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


def list_api_keys(session: Session, include_revoked: bool = False) -> list[ApiKeyInfo]:
    stmt = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
    if not include_revoked:
        stmt = stmt.where(ApiKey.revoked_at.is_(None))
    return [
        ApiKeyInfo(k.id, k.name, list(k.scopes), k.created_at, k.revoked_at, k.last_used_at)
        for k in session.scalars(stmt)
    ]


def revoke_api_key(session: Session, key_id: uuid.UUID) -> bool:
    """Revoke a key by id; False if there is no such key or it was already revoked."""
    result = session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .returning(ApiKey.id)
    )
    return result.first() is not None


class Principal:
    def __init__(self, key_id: str, scopes: Sequence[str]) -> None:
        self.key_id = key_id
        self.scopes = frozenset(scopes)

    def require(self, scope: str) -> None:
        if scope not in self.scopes and "admin" not in self.scopes:
            raise Forbidden(f"This API key needs the {scope!r} scope.", required_scope=scope)


_cache: dict[str, tuple[float, Principal | None]] = {}
_cache_lock = threading.Lock()


def _cached(key_hash: str) -> tuple[bool, Principal | None]:
    """(True, principal or None) if this process looked the key up recently."""
    with _cache_lock:
        hit = _cache.get(key_hash)
    if hit is not None and time.monotonic() - hit[0] < KEY_CACHE_SECONDS:
        return True, hit[1]
    return False, None


def _lookup(key_hash: str) -> Principal | None:
    """Read the key's scopes (and note its use) in a transaction of its own."""
    now = time.monotonic()
    with session_scope() as session:
        row = session.execute(
            update(ApiKey)
            .where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
            .values(last_used_at=func.now())
            .returning(ApiKey.id, ApiKey.scopes)
        ).first()
        principal = Principal(str(row.id), list(row.scopes)) if row is not None else None
    with _cache_lock:
        if len(_cache) > 10_000:
            _cache.clear()
        _cache[key_hash] = (now, principal)
    return principal


def forget_cached_keys() -> None:
    """Drop the per-process key cache (tests revoke keys and expect it at once)."""
    with _cache_lock:
        _cache.clear()


async def check_rate_limit(
    redis: AsyncRedis, principal: Principal, limit: int, window_seconds: int
) -> None:
    """A fixed window per key in Redis; over budget is a 429 with Retry-After.

    If Redis is unreachable the request is let through: rate limiting protects the service,
    it must not become the reason it is down.
    """
    if limit <= 0:
        return
    now = time.time()
    window = int(now // window_seconds)
    key = f"boxoffice:ratelimit:{principal.key_id}:{window}"
    try:
        pipe = redis.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, window_seconds + 1)
        count, _ = await pipe.execute()
    except RedisError as exc:
        log.warning("rate limiter unavailable, letting the request through: %r", exc)
        return
    if int(count) > limit:
        retry_after = max(1, int((window + 1) * window_seconds - now + 0.999))
        raise RateLimited(
            f"This API key may send {limit} requests per {window_seconds}s.", retry_after
        )


async def authenticate(
    settings: SettingsDep,
    runtime: RuntimeDep,
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    """Resolve `Authorization: Bearer <key>` to the key's scopes, within its rate limit.

    Runs on the event loop: a key seen in the last few seconds is answered from memory, and
    only a lookup goes to a worker thread.
    """
    if not authorization:
        raise Unauthorized("Send 'Authorization: Bearer <api key>'.")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send 'Authorization: Bearer <api key>'.")
    key_hash = hash_key(token.strip())
    known, principal = _cached(key_hash)
    if not known:
        principal = await run_in_threadpool(_lookup, key_hash)
    if principal is None:
        raise Unauthorized("The API key is unknown or revoked.")
    await check_rate_limit(
        runtime.redis, principal, settings.rate_limit_requests, settings.rate_limit_window_seconds
    )
    return principal


PrincipalDep = Annotated[Principal, Depends(authenticate)]


def require_scope(scope: str) -> object:
    async def check(principal: PrincipalDep) -> Principal:
        principal.require(scope)
        return principal

    return Depends(check)
