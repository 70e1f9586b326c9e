"""Authentication: each request's API key is parsed, hashed and resolved once, before any work.

`AuthMiddleware` runs outside the idempotency middleware and the routes, on every path that
needs a key (`requires_api_key`):

- a key this process resolved in the last `KEY_CACHE_SECONDS` is answered from memory;
- any other request (no key, an unknown or revoked one, or a key not seen lately) first
  spends one unit of its client address's budget (`AddressThrottle`, in Redis): past it, a
  `429` before any database work;
- unknown keys are remembered in a bounded LRU, apart from the known-good keys, so a flood
  of made-up tokens neither reaches the database twice nor pushes a good key out;
- the answer to a request without a valid key is a `401`, whatever its body.

Routes read the resolved `Principal` through `authenticate`, which also spends the key's
request budget, and check scopes with `require_scope`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Annotated

from boxoffice_db.models import BOOTSTRAP_OWNER_ID
from boxoffice_settings import Settings, get_settings
from fastapi import Depends, Request, params
from psycopg import OperationalError
from psycopg_pool import PoolTimeout
from redis import RedisError
from redis.asyncio import Redis as AsyncRedis
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from boxoffice_booking import api_key_repository
from boxoffice_booking.api_key_repository import (
    ApiKeyInfo,
    create_api_key,
    generate_key,
    hash_key,
    list_api_keys,
    revoke_api_key,
)
from boxoffice_booking.deps import RuntimeDep, SettingsDep, runtime_of
from boxoffice_booking.limits import (
    WEBHOOK_PREFIX,
    AddressThrottle,
    client_address,
    discard_body,
    trusted_networks,
)
from boxoffice_booking.problems import (
    AuthenticationThrottled,
    Forbidden,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
    send_problem,
)

__all__ = [
    "SCOPES",
    "ApiKeyInfo",
    "AuthMiddleware",
    "Principal",
    "PrincipalDep",
    "authenticate",
    "create_api_key",
    "forget_cached_keys",
    "generate_key",
    "hash_key",
    "list_api_keys",
    "require_scope",
    "revoke_api_key",
]

log = logging.getLogger(__name__)

# `bookings:read:all` reads every client's bookings (operators, support); `admin` does all.
SCOPES = ("bookings:read", "bookings:read:all", "bookings:write", "catalog:write", "admin")
KEY_CACHE_SECONDS = 5.0
PRINCIPAL = "boxoffice.principal"
# Set by a middleware that charged the request to its key's rate limit (the hold guard).
RATE_CHARGED = "boxoffice.rate_charged"


class Principal:
    """Who sent a request: the API key's id and hash, its scopes, and its client (owner)."""

    def __init__(
        self,
        key_id: str,
        scopes: list[str] | frozenset[str],
        key_hash: str = "",
        owner_id: uuid.UUID = BOOTSTRAP_OWNER_ID,
    ) -> None:
        self.key_id = key_id
        self.key_hash = key_hash
        self.scopes = frozenset(scopes)
        self.owner_id = owner_id

    def has(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    def require(self, scope: str) -> None:
        if not self.has(scope):
            raise Forbidden(f"This API key needs the {scope!r} scope.", required_scope=scope)


def requires_api_key(path: str) -> bool:
    """Every `/v1/` route needs an API key, except providers' webhooks (signed instead)."""
    return path.startswith("/v1/") and not path.startswith(WEBHOOK_PREFIX)


def bearer_token(headers: Headers) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class KeyCache:
    """Resolved keys of this process: good ones apart from a bounded LRU of unknown ones."""

    def __init__(self, negative_size: int) -> None:
        self.negative_size = negative_size
        # Only keys that exist in the database get here: bounded by the keys there are.
        self.good: dict[str, tuple[float, Principal]] = {}
        self.unknown: OrderedDict[str, float] = OrderedDict()

    def fresh(self, key_hash: str) -> Principal | None:
        hit = self.good.get(key_hash)
        if hit is not None and time.monotonic() - hit[0] < KEY_CACHE_SECONDS:
            return hit[1]
        return None

    def is_good(self, key_hash: str) -> bool:
        return key_hash in self.good

    def known_unknown(self, key_hash: str) -> bool:
        seen = self.unknown.get(key_hash)
        if seen is None:
            return False
        if time.monotonic() - seen >= KEY_CACHE_SECONDS:
            del self.unknown[key_hash]
            return False
        self.unknown.move_to_end(key_hash)
        return True

    def remember(self, key_hash: str, principal: Principal | None) -> None:
        now = time.monotonic()
        if principal is not None:
            self.unknown.pop(key_hash, None)
            self.good[key_hash] = (now, principal)
            return
        self.good.pop(key_hash, None)
        self.unknown[key_hash] = now
        self.unknown.move_to_end(key_hash)
        while len(self.unknown) > self.negative_size:
            self.unknown.popitem(last=False)

    def clear(self) -> None:
        self.good.clear()
        self.unknown.clear()


# One per process: every app a process makes (tests make several) shares what it learnt.
_keys: KeyCache | None = None


def key_cache(settings: Settings) -> KeyCache:
    global _keys
    if _keys is None or _keys.negative_size != settings.negative_key_cache_size:
        _keys = KeyCache(settings.negative_key_cache_size)
    return _keys


def forget_cached_keys() -> None:
    """Drop the per-process key cache (tests revoke keys and expect it at once)."""
    if _keys is not None:
        _keys.clear()


class AuthMiddleware:
    """Resolve the API key once per request, throttling those without a known-good one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not requires_api_key(scope["path"]):
            await self.app(scope, receive, send)
            return
        try:
            principal = await self._resolve(scope, get_settings())
        except (AuthenticationThrottled, Unauthorized, ServiceUnavailable) as problem:
            if not await discard_body(scope, receive):
                problem.headers["Connection"] = "close"
            await send_problem(send, problem, scope)
            return
        scope[PRINCIPAL] = principal
        await self.app(scope, receive, send)

    async def _resolve(self, scope: Scope, settings: Settings) -> Principal:
        keys = key_cache(settings)
        token = bearer_token(Headers(scope=scope))
        key_hash = hash_key(token) if token is not None else None
        if key_hash is not None:
            principal = keys.fresh(key_hash)
            if principal is not None:
                return principal
        runtime = runtime_of(scope["app"])
        if key_hash is None:
            await self._throttle(scope, settings, runtime.redis)
            raise Unauthorized("Send 'Authorization: Bearer <api key>'.")
        shared = runtime.key_lookups.get(key_hash)
        if shared is not None:
            # A request with this key is being resolved: its answer is this one's too, so
            # a burst of a key this process has not seen lately is one lookup and spends
            # its address's budget once (found by `make bench`: 1,000 holds at once spent
            # 1,000 units, drew 429s and emptied the Redis connection pool).
            found = await asyncio.shield(shared)
            if found is RESOLVE_AGAIN:  # that request was throttled (its address) or gone
                return await self._resolve(scope, settings)
            return _principal_of(found)
        lookup: asyncio.Future[Principal | object | None] = (
            asyncio.get_running_loop().create_future()
        )
        runtime.key_lookups[key_hash] = lookup
        try:
            if not keys.is_good(key_hash):
                await self._throttle(scope, settings, runtime.redis)
            if keys.known_unknown(key_hash):
                lookup.set_result(None)
                raise Unauthorized("The API key is unknown or revoked.")
            try:
                async with runtime.pool.connection() as conn:
                    found = await api_key_repository.find_active_key(conn, key_hash)
            except (OperationalError, PoolTimeout) as exc:
                log.warning("API key lookup failed: %r", exc)
                lookup.set_result(LOOKUP_FAILED)
                raise ServiceUnavailable("The database is unavailable; retry later.") from exc
            principal = (
                Principal(str(found.id), found.scopes, key_hash, found.owner_id) if found else None
            )
            keys.remember(key_hash, principal)
            lookup.set_result(principal)
        finally:
            if runtime.key_lookups.get(key_hash) is lookup:
                del runtime.key_lookups[key_hash]
            if not lookup.done():
                lookup.set_result(RESOLVE_AGAIN)
        return _principal_of(principal)

    @staticmethod
    async def _throttle(scope: Scope, settings: Settings, redis: AsyncRedis) -> None:
        """Spend a unit of the client address's budget; past it, a 429."""
        throttle = AddressThrottle(
            redis, settings.auth_failure_limit, settings.auth_failure_window_seconds
        )
        trusted = trusted_networks(tuple(settings.trusted_proxies))
        retry_after = await throttle.count(client_address(scope, trusted))
        if retry_after is not None:
            raise AuthenticationThrottled(throttle.limit, throttle.window_seconds, retry_after)


# What requests waiting for another's key lookup get when it failed, or when it ended without
# an answer for them (throttled by its own address, or cancelled): they resolve on their own.
LOOKUP_FAILED = object()
RESOLVE_AGAIN = object()


def _principal_of(found: Principal | object | None) -> Principal:
    if found is LOOKUP_FAILED:
        raise ServiceUnavailable("The database is unavailable; retry later.")
    if not isinstance(found, Principal):
        raise Unauthorized("The API key is unknown or revoked.")
    return found


def rate_limit_window(principal: Principal, window_seconds: int, now: float) -> tuple[str, int]:
    """The Redis counter of `principal`'s fixed window at `now`, and the window's number."""
    window = int(now // window_seconds)
    return f"boxoffice:ratelimit:{principal.key_id}:{window}", window


def rate_limited(limit: int, window_seconds: int, window: int, now: float) -> RateLimited:
    """The 429 for a key past `limit` in `window`, with the seconds until the next one."""
    retry_after = max(1, int((window + 1) * window_seconds - now + 0.999))
    return RateLimited(
        f"This API key may send {limit} requests per {window_seconds}s.", retry_after
    )


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
    key, window = rate_limit_window(principal, window_seconds, now)
    try:
        pipe = redis.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, window_seconds + 1)
        count, _ = await pipe.execute()
    except RedisError as exc:
        log.warning("rate limiter unavailable, letting the request through: %r", exc)
        return
    if int(count) > limit:
        raise rate_limited(limit, window_seconds, window, now)


async def authenticate(request: Request, settings: SettingsDep, runtime: RuntimeDep) -> Principal:
    """The request's principal (resolved by `AuthMiddleware`), within its key's rate limit."""
    principal = request.scope.get(PRINCIPAL)
    if not isinstance(principal, Principal):
        raise Unauthorized("Send 'Authorization: Bearer <api key>'.")
    if request.scope.get(RATE_CHARGED):
        return principal  # the hold guard charged this request already
    await check_rate_limit(
        runtime.redis, principal, settings.rate_limit_requests, settings.rate_limit_window_seconds
    )
    return principal


PrincipalDep = Annotated[Principal, Depends(authenticate)]


def scope_check(scope: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency: the principal, if its key has `scope` (or `admin`); else a 403."""

    async def check(principal: PrincipalDep) -> Principal:
        principal.require(scope)
        return principal

    check.__name__ = f"require_{scope.replace(':', '_')}"
    return check


def require_scope(scope: str) -> params.Depends:
    """`Depends(scope_check(scope))`, for `dependencies=[...]` or `Annotated[Principal, ...]`."""
    return params.Depends(scope_check(scope))
