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

from boxoffice_db.engine import session_scope
from boxoffice_db.models import IdempotencyRecord
from boxoffice_settings import get_settings
from sqlalchemy import delete, null, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.sql import func
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


def claim_key(
    principal: str, key: str, method: str, path: str, request_hash: str, ttl_seconds: int
) -> ClaimResult:
    """Claim `key` for this request, or say why not (stored answer, mismatch, in progress)."""
    with session_scope() as session:
        # One statement: a new key is inserted; an expired record, or a claim abandoned by a
        # dead process, is taken over; a live record is left alone (and nothing is returned).
        stmt = insert(IdempotencyRecord).values(
            principal=principal,
            key=key,
            method=method,
            path=path,
            request_hash=request_hash,
            expires_at=func.now() + timedelta(seconds=ttl_seconds),
        )
        claimed = session.execute(
            stmt.on_conflict_do_update(
                index_elements=[IdempotencyRecord.principal, IdempotencyRecord.key],
                set_={
                    "method": stmt.excluded.method,
                    "path": stmt.excluded.path,
                    "request_hash": stmt.excluded.request_hash,
                    "response_status": null(),
                    "response_headers": null(),
                    "response_body": null(),
                    "created_at": func.now(),
                    "expires_at": stmt.excluded.expires_at,
                },
                where=or_(
                    IdempotencyRecord.expires_at <= func.now(),
                    (IdempotencyRecord.response_status.is_(None))
                    & (IdempotencyRecord.created_at <= func.now() - STALE_CLAIM),
                ),
            ).returning(IdempotencyRecord.key)
        ).first()
        if claimed is not None:
            return ClaimResult(Claim.CLAIMED)
        record = session.scalars(
            select(IdempotencyRecord).where(
                IdempotencyRecord.principal == principal, IdempotencyRecord.key == key
            )
        ).first()
    if record is None:  # freed between our insert and select: the client may simply retry
        return ClaimResult(Claim.IN_PROGRESS)
    if record.request_hash != request_hash:
        return ClaimResult(Claim.MISMATCH)
    if record.response_status is None:
        return ClaimResult(Claim.IN_PROGRESS)
    return ClaimResult(
        Claim.REPLAY, record.response_status, record.response_headers, record.response_body or b""
    )


def finish_claim(
    principal: str, key: str, status: int, headers: dict[str, str], body: bytes
) -> None:
    """Store the answer, or release the key if the answer is one the client should retry."""
    with session_scope() as session:
        where = (IdempotencyRecord.principal == principal) & (IdempotencyRecord.key == key)
        if status >= 500 or status in NOT_STORED:
            session.execute(delete(IdempotencyRecord).where(where))
        else:
            session.execute(
                update(IdempotencyRecord)
                .where(where)
                .values(response_status=status, response_headers=headers, response_body=body)
            )


def release_claim(principal: str, key: str) -> None:
    with session_scope() as session:
        session.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.principal == principal, IdempotencyRecord.key == key
            )
        )


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
        result = await run_in_threadpool(
            claim_key, principal, key, scope["method"], path, request_hash, ttl
        )
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

        await self._answer_and_store(scope, bytes(body), send, principal, key)

    async def _answer_and_store(
        self, scope: Scope, body: bytes, send: Send, principal: str, key: str
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
            await run_in_threadpool(release_claim, principal, key)
            raise
        await run_in_threadpool(
            finish_claim, principal, key, status, response_headers, b"".join(chunks)
        )
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
