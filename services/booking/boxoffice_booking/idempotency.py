"""`Idempotency-Key` on every POST: the first answer is stored and replayed.

- same key, same request: the stored response again (`Idempotent-Replayed: true`);
- same key, another method/path/body: `422`;
- same key while the first is still being answered: `409` with `Retry-After`;
- 5xx, 409 and 429 answers are not stored, so the client can retry them with the same key.

Keys are scoped by API key (its hash), kept for `idempotency_ttl_seconds` (24 h), and the
claim is an INSERT on the primary key, so two API processes cannot both run one request.
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from boxoffice_db.aio import AsyncConn
from boxoffice_settings import get_settings
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from boxoffice_booking.deps import runtime_of
from boxoffice_booking.problems import PROBLEM_BASE, PROBLEM_JSON

HEADER = "idempotency-key"
NOT_STORED = {409, 429}
# A claim whose request never finished (its process died) is given up after this long.
STALE_CLAIM = timedelta(minutes=2)
REPLAYED_HEADERS = ("content-type", "location", "retry-after")


class Claim(enum.Enum):
    CLAIMED = "claimed"
    MISMATCH = "mismatch"
    IN_PROGRESS = "in_progress"
    REPLAY = "replay"


@dataclass
class ClaimResult:
    claim: Claim
    status: int = 0
    headers: dict[str, str] | None = None
    body: bytes = b""


# A new key is inserted; an expired record, or a claim abandoned by a dead process, is taken
# over; a live record is left alone, and then nothing is returned.
_CLAIM = """
INSERT INTO idempotency_keys (principal, key, method, path, request_hash, expires_at)
VALUES (%(principal)s, %(key)s, %(method)s, %(path)s, %(request_hash)s,
        now() + %(ttl)s::int * interval '1 second')
ON CONFLICT (principal, key) DO UPDATE
SET method = excluded.method, path = excluded.path, request_hash = excluded.request_hash,
    response_status = NULL, response_headers = NULL, response_body = NULL,
    created_at = now(), expires_at = excluded.expires_at
WHERE idempotency_keys.expires_at <= now()
   OR (idempotency_keys.response_status IS NULL
       AND idempotency_keys.created_at <= now() - %(stale)s)
RETURNING key
"""
_RECORD = """
SELECT request_hash, response_status, response_headers, response_body
FROM idempotency_keys WHERE principal = %(principal)s AND key = %(key)s
"""
_STORE = """
UPDATE idempotency_keys
SET response_status = %(status)s, response_headers = %(headers)s, response_body = %(body)s
WHERE principal = %(principal)s AND key = %(key)s
"""
_RELEASE = "DELETE FROM idempotency_keys WHERE principal = %(principal)s AND key = %(key)s"


async def claim_key(
    conn: AsyncConn,
    principal: str,
    key: str,
    method: str,
    path: str,
    request_hash: str,
    ttl_seconds: int,
) -> ClaimResult:
    """Claim `key` for this request, or say why not (stored answer, mismatch, in progress)."""
    ids = {"principal": principal, "key": key}
    claimed = await conn.execute(
        _CLAIM,
        ids
        | {
            "method": method,
            "path": path,
            "request_hash": request_hash,
            "ttl": ttl_seconds,
            "stale": STALE_CLAIM,
        },
    )
    if await claimed.fetchone() is not None:
        return ClaimResult(Claim.CLAIMED)
    record = await (await conn.execute(_RECORD, ids)).fetchone()
    if record is None:  # freed between our insert and select: the client may simply retry
        return ClaimResult(Claim.IN_PROGRESS)
    if record.request_hash != request_hash:
        return ClaimResult(Claim.MISMATCH)
    if record.response_status is None:
        return ClaimResult(Claim.IN_PROGRESS)
    return ClaimResult(
        Claim.REPLAY, record.response_status, record.response_headers, record.response_body or b""
    )


async def finish_claim(
    conn: AsyncConn, principal: str, key: str, status: int, headers: dict[str, str], body: bytes
) -> None:
    """Store the answer, or release the key if the answer is one the client should retry."""
    ids = {"principal": principal, "key": key}
    if status >= 500 or status in NOT_STORED:
        await conn.execute(_RELEASE, ids)
    else:
        await conn.execute(
            _STORE, ids | {"status": status, "headers": Jsonb(headers), "body": body}
        )


async def release_claim(conn: AsyncConn, principal: str, key: str) -> None:
    await conn.execute(_RELEASE, {"principal": principal, "key": key})


def _problem(status: int, slug: str, title: str, detail: str, path: str) -> dict[str, Any]:
    return {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": path,
    }


class IdempotencyMiddleware:
    """Pure ASGI middleware, so it sees the raw body and the final response bytes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        key = headers.get(HEADER)
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if key is None or scheme.lower() != "bearer" or not token.strip():
            # No key, or no API key to scope it by (the request is refused as 401 anyway).
            await self.app(scope, receive, send)
            return
        # The path as sent (percent-encoded): a decoded one may hold NUL, which text cannot.
        path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")[:500]
        if not 1 <= len(key) <= 255 or not key.isprintable() or not key.isascii():
            await _send_json(
                send,
                400,
                _problem(
                    400,
                    "invalid-idempotency-key",
                    "The Idempotency-Key is not valid",
                    "Use 1 to 255 printable ASCII characters, e.g. a UUID.",
                    path,
                ),
            )
            return

        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        query = scope.get("query_string", b"")
        request_hash = hashlib.sha256(
            b"\0".join([scope["method"].encode(), path.encode(), query, bytes(body)])
        ).hexdigest()
        principal = hashlib.sha256(token.strip().encode()).hexdigest()
        ttl = get_settings().idempotency_ttl_seconds
        pool = runtime_of(scope["app"]).pool
        async with pool.connection() as conn:
            result = await claim_key(conn, principal, key, scope["method"], path, request_hash, ttl)
        if result.claim is Claim.MISMATCH:
            detail = "This Idempotency-Key was used with another request; use a new key."
            problem = _problem(
                422, "idempotency-key-reused", "Idempotency-Key reused", detail, path
            )
            await _send_json(send, 422, problem)
            return
        if result.claim is Claim.IN_PROGRESS:
            detail = "A request with this Idempotency-Key is still being answered."
            problem = _problem(
                409, "idempotency-key-in-progress", "Request in progress", detail, path
            )
            await _send_json(send, 409, problem, {"retry-after": "1"})
            return
        if result.claim is Claim.REPLAY:
            replay_headers = {**(result.headers or {}), "idempotent-replayed": "true"}
            await _send_raw(send, result.status, replay_headers, result.body)
            return

        await self._answer_and_store(scope, bytes(body), send, pool, principal, key)

    async def _answer_and_store(
        self,
        scope: Scope,
        body: bytes,
        send: Send,
        pool: AsyncConnectionPool,
        principal: str,
        key: str,
    ) -> None:
        delivered = False

        async def replay_body() -> Message:
            nonlocal delivered
            if delivered:
                return {"type": "http.disconnect"}
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        status = 500
        response_headers: dict[str, str] = {}
        chunks: list[bytes] = []
        # Held back until the answer is stored, so a retry that follows it is a replay.
        messages: list[Message] = []

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for name, value in message.get("headers", []):
                    lowered = name.decode("latin-1").lower()
                    if lowered in REPLAYED_HEADERS:
                        response_headers[lowered] = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            messages.append(message)

        try:
            await self.app(scope, replay_body, capture)
        except BaseException:
            async with pool.connection() as conn:
                await release_claim(conn, principal, key)
            raise
        async with pool.connection() as conn:
            await finish_claim(conn, principal, key, status, response_headers, b"".join(chunks))
        for message in messages:
            await send(message)


async def _send_raw(send: Send, status: int, headers: dict[str, str], body: bytes) -> None:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _send_json(
    send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    await _send_raw(
        send, status, {"content-type": PROBLEM_JSON, **(headers or {})}, json.dumps(body).encode()
    )
