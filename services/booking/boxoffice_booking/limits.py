"""Limits applied before any work: the request body's size, and who may try keys how often.

- `BodyLimitMiddleware` refuses a body larger than its route's cap with a `413`, by its
  `Content-Length` before reading a byte, and while it streams (chunked, or a length that
  lies) as soon as the cap is passed; nothing inside it ever holds more than the cap. A body
  that stops arriving for `api_body_read_timeout_seconds` is a `408` and the connection closes.
- `client_address` is the address a request came from: the peer, or, when the peer is a
  trusted proxy, the nearest `X-Forwarded-For` hop that is not one (a client can prepend
  anything to that header, so it is read from the right and only through trusted hops).
- `AddressThrottle` counts requests without a known-good API key per client address in a
  fixed window in Redis, shared by every replica.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

from boxoffice_settings import Settings, get_settings
from boxoffice_telemetry.asgi import HttpMiddleware
from redis import RedisError
from redis.asyncio import Redis as AsyncRedis
from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send

from boxoffice_booking.problems import BodyReadTimeout, PayloadTooLarge, Problem, send_problem

log = logging.getLogger(__name__)

WEBHOOK_PREFIX = "/v1/payments/webhooks/"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def body_limit(path: str, settings: Settings) -> int:
    """The largest body the route at `path` takes: a provider's webhook is small."""
    if path.startswith(WEBHOOK_PREFIX):
        return settings.webhook_max_body_bytes
    return settings.api_max_body_bytes


class BodyTooLarge(Exception):
    """Raised from `receive` once a body passes its cap; the middleware answers 413."""


class BodyTimedOut(Exception):
    """Raised from `receive` when the body stops arriving; the middleware answers 408."""


class BodyLimitMiddleware(HttpMiddleware):
    """Pure ASGI, outside everything that reads a body."""

    async def handle_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        settings = get_settings()
        limit = body_limit(scope["path"], settings)
        timeout = settings.api_body_read_timeout_seconds
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await send_problem(send, PayloadTooLarge(limit), scope)
            return
        received = 0
        refused: Problem | None = None
        body_complete = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, refused, body_complete
            if body_complete:
                return await receive()  # after the body: a disconnect, whenever it comes
            try:
                message = await asyncio.wait_for(receive(), timeout)
            except TimeoutError:
                refused = BodyReadTimeout(timeout)
                raise BodyTimedOut from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = PayloadTooLarge(limit)
                    raise BodyTooLarge
                body_complete = not message.get("more_body", False)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused is not None:
                return  # whatever an inner layer made of the exception, the answer is ours
            started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if refused is None:
                raise
        if refused is not None and not started:
            await send_problem(send, refused, scope)


# A body this small is read and dropped when a request is refused before its body was read,
# so the connection can carry the caller's next request; a larger one closes the connection.
DISCARD_LIMIT = 64 * 1024


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body (capped by BodyLimitMiddleware); None if the client went away."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return bytes(body)


async def discard_body(scope: Scope, receive: Receive) -> bool:
    """Read and drop a small unread request body; False if the connection must close."""
    headers = Headers(scope=scope)
    declared = headers.get("content-length")
    if declared is None and "chunked" not in headers.get("transfer-encoding", "").lower():
        return True
    if declared is not None and (not declared.isdigit() or int(declared) > DISCARD_LIMIT):
        return False
    read = 0
    try:
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return False
            read += len(message.get("body", b""))
            if read > DISCARD_LIMIT:
                return False
            if not message.get("more_body", False):
                return True
    except (BodyTooLarge, BodyTimedOut):
        return False


@functools.lru_cache(maxsize=8)
def trusted_networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.7:443"
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def client_address(scope: Scope, trusted: tuple[Network, ...]) -> str:
    """The request's client address, believing X-Forwarded-For only through trusted proxies."""
    client = scope.get("client")
    peer = str(client[0]) if client else "unknown"
    hop = _ip(peer)
    if not trusted or hop is None or not any(hop in net for net in trusted):
        return peer
    forwarded: list[str] = []
    for name, value in scope.get("headers", []):
        if name == b"x-forwarded-for":
            forwarded.extend(value.decode("latin-1").split(","))
    address = str(hop)
    for entry in reversed(forwarded):
        hop = _ip(entry)
        if hop is None:  # a hop we cannot read: the last one we could is the best we know
            return address
        address = str(hop)
        if not any(hop in net for net in trusted):
            return address
    return address


# Addresses this process saw over budget, until their window ends: a flood from one address
# is then refused without a Redis round trip. Bounded; the oldest entries go first.
_over_budget: OrderedDict[str, float] = OrderedDict()
OVER_BUDGET_REMEMBERED = 10_000


@dataclass
class AddressThrottle:
    """A fixed window per client address in Redis for requests without a known-good key."""

    redis: AsyncRedis
    limit: int
    window_seconds: int

    async def count(self, address: str) -> int | None:
        """Count this request; the seconds to wait if the address is over its budget.

        If Redis is unreachable the request is let through: the throttle protects the
        service, it must not become the reason it is down.
        """
        if self.limit <= 0:
            return None
        now = time.time()
        until = _over_budget.get(address)
        if until is not None:
            if until > now:
                return max(1, int(until - now + 0.999))
            del _over_budget[address]
        window = int(now // self.window_seconds)
        key = f"boxoffice:auththrottle:{address}:{window}"
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.incr(key)
            pipe.expire(key, self.window_seconds + 1)
            counted, _ = await pipe.execute()
        except RedisError as exc:
            log.warning("authentication throttle unavailable, letting through: %r", exc)
            return None
        if int(counted) <= self.limit:
            return None
        until = (window + 1) * self.window_seconds
        _over_budget[address] = until
        while len(_over_budget) > OVER_BUDGET_REMEMBERED:
            _over_budget.popitem(last=False)
        return max(1, int(until - now + 0.999))
