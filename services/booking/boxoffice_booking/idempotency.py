"""`Idempotency-Key` on every POST: the first answer is stored and replayed.

- same key, same request: the stored response again (`Idempotent-Replayed: true`);
- same key, another method/path/body: `422`;
- same key while the first is still being answered: `409` with `Retry-After`;
- 5xx, 401, 403, 409, 413 and 429 answers are not stored, so the client can retry them with
  the same key (and nobody can fill the table without a valid API key).

Keys are scoped by API key (its hash) and kept for `idempotency_ttl_seconds` (24 h). The
middleware runs inside `AuthMiddleware` and `BodyLimitMiddleware`: a request reaches the claim
only with a valid key and a body within its route's cap. The SQL is in `idempotency_repository`.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

from boxoffice_bookings import holds
from boxoffice_db.aio import AsyncConn
from boxoffice_settings import get_settings
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from boxoffice_booking.auth import PRINCIPAL, Principal
from boxoffice_booking.deps import (
    BORROWS_CONNECTION,
    KEY_CLAIM,
    LENT_CONNECTION,
    runtime_of,
)
from boxoffice_booking.idempotency_repository import (
    CLAIM_SQL,
    STALE_CLAIM,
    Claim,
    ClaimResult,
    claim_key,
    claim_params,
    refused_claim,
    release_claim,
    store_answer,
)
from boxoffice_booking.limits import discard_body, read_body
from boxoffice_booking.problems import Problem, send_problem
from boxoffice_booking.seat_cache import HOLD_REQUEST

__all__ = ["STALE_CLAIM", "Claim", "ClaimResult", "IdempotencyMiddleware", "claim_key"]

HEADER = "idempotency-key"
NOT_STORED = frozenset({401, 403, 409, 413, 429})
REPLAYED_HEADERS = ("content-type", "location", "retry-after")
IDLE = TransactionStatus.IDLE


def valid_key(key: str) -> bool:
    """1 to 255 printable ASCII characters."""
    return 1 <= len(key) <= 255 and key.isprintable() and key.isascii()


def stored(status: int) -> bool:
    """Whether an answer is kept for replay; the others leave the key free for a retry."""
    return status < 500 and status not in NOT_STORED


class InvalidIdempotencyKey(Problem):
    status, slug, title = 400, "invalid-idempotency-key", "The Idempotency-Key is not valid"


class IdempotencyKeyInProgress(Problem):
    status, slug, title = 409, "idempotency-key-in-progress", "Request in progress"
    default_headers = {"Retry-After": "1"}


class IdempotencyKeyReused(Problem):
    status, slug, title = 422, "idempotency-key-reused", "Idempotency-Key reused"


class _RunAgain(Exception):
    """A hold answered with an answer to keep, without its statement having claimed the key."""


class IdempotencyMiddleware:
    """Pure ASGI middleware, so it sees the raw body and the final response bytes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = scope.get(PRINCIPAL)
        if scope["type"] != "http" or scope["method"] != "POST" or principal is None:
            # No API key to scope a key by: the request is a webhook or refused anyway.
            await self.app(scope, receive, send)
            return
        assert isinstance(principal, Principal)
        key = Headers(scope=scope).get(HEADER)
        if key is None:
            await self.app(scope, receive, send)
            return
        # The path as sent (percent-encoded): a decoded one may hold NUL, which text cannot.
        path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")[:500]
        if not valid_key(key):
            problem = InvalidIdempotencyKey("Use 1 to 255 printable ASCII characters, e.g. a UUID.")
            if not await discard_body(scope, receive):
                problem.headers["Connection"] = "close"
            await send_problem(send, problem, scope)
            return

        body = await read_body(receive)
        if body is None:
            return
        query = scope.get("query_string", b"")
        request_hash = hashlib.sha256(
            b"\0".join([scope["method"].encode(), path.encode(), query, body])
        ).hexdigest()
        owner = principal.key_hash
        ttl = get_settings().idempotency_ttl_seconds
        pool = runtime_of(scope["app"]).pool
        method = scope["method"]
        if isinstance(scope.get(HOLD_REQUEST), holds.HoldRequest):
            # A hold the guard reserved goes straight to its statement (ReservedHoldMiddleware),
            # which claims the key itself (one round trip fewer, issue 18).
            params = claim_params(owner, key, method, path, request_hash, ttl)
            outcome = await self._hold_claiming(scope, body, pool, params)
            if isinstance(outcome, ClaimResult):
                await _send_refusal(send, scope, outcome)
                return
            if outcome is not None:
                await _send_all(send, outcome)  # once the connection is back in the pool
                return
        answer: list[Message] | None = None
        async with pool.connection() as conn:
            result = await claim_key(conn, owner, key, method, path, request_hash, ttl)
            if result.claim is Claim.CLAIMED and scope.get(BORROWS_CONNECTION):
                # One connection from the claim to the stored answer (see deps.LENT_CONNECTION).
                scope[LENT_CONNECTION] = conn
                answer = await self._answer_and_store(scope, body, pool, owner, key, conn)
        if result.claim is not Claim.CLAIMED:
            await _send_refusal(send, scope, result)
            return
        if answer is None:
            answer = await self._answer_and_store(scope, body, pool, owner, key)
        await _send_all(send, answer)  # once the connection is back in the pool

    async def _hold_claiming(
        self, scope: Scope, body: bytes, pool: AsyncConnectionPool, params: dict[str, Any]
    ) -> list[Message] | ClaimResult | None:
        """A hold whose own statement claims the key (deps.KEY_CLAIM, with CLAIM_SQL's
        `params`), on one lent connection from the claim to the stored answer: the answer's
        messages; or why the statement did not take the key (another request has it); or None
        if the request is to be claimed and run the usual way."""
        owner, key = params["principal"], params["key"]
        claim = holds.KeyClaim(CLAIM_SQL, params)
        async with pool.connection() as conn:
            scope[LENT_CONNECTION] = conn
            scope[KEY_CLAIM] = claim
            try:
                return await self._answer_and_store(scope, body, pool, owner, key, conn, claim)
            except holds.ClaimNotTaken:
                # Another request has the key: its stored answer, a mismatch or in progress.
                return await refused_claim(conn, owner, key, params["request_hash"])
            except _RunAgain:
                return None
            finally:
                scope.pop(KEY_CLAIM, None)

    async def _answer_and_store(
        self,
        scope: Scope,
        body: bytes,
        pool: AsyncConnectionPool,
        owner: str,
        key: str,
        lent: AsyncConn | None = None,
        claim: holds.KeyClaim | None = None,
    ) -> list[Message]:
        """Run the request and store its answer (or release the key); the answer's messages,
        held back until then so that a retry which follows the answer is a replay.

        With `lent`, the connection that the handler may use too: it stores the answer if the
        handler left it idle, otherwise the pool gives another. With `claim`, the key is
        claimed by the handler's hold statement (holds.KeyClaim); if the handler answered
        without taking it, an answer that is not kept is sent as it is (nothing was written),
        and for one that would be kept, _RunAgain: the request is to be claimed and run again
        the usual way.
        """
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
            if claim is None or claim.taken:
                async with _idle_or_pooled(lent, pool) as conn:
                    await release_claim(conn, owner, key)
            raise
        finally:
            scope.pop(LENT_CONNECTION, None)
        if claim is not None and not claim.taken:
            if stored(status):
                raise _RunAgain()
            return messages
        async with _idle_or_pooled(lent, pool) as conn:
            if stored(status):
                await store_answer(conn, owner, key, status, response_headers, b"".join(chunks))
            else:
                await release_claim(conn, owner, key)
        return messages


async def _send_refusal(send: Send, scope: Scope, result: ClaimResult) -> None:
    """The answer to a request whose key another request has."""
    if result.claim is Claim.MISMATCH:
        detail = "This Idempotency-Key was used with another request; use a new key."
        await send_problem(send, IdempotencyKeyReused(detail), scope)
    elif result.claim is Claim.IN_PROGRESS:
        detail = "A request with this Idempotency-Key is still being answered."
        await send_problem(send, IdempotencyKeyInProgress(detail), scope)
    else:
        replay_headers = {**(result.headers or {}), "idempotent-replayed": "true"}
        await _send_raw(send, result.status, replay_headers, result.body)


async def _send_all(send: Send, messages: list[Message]) -> None:
    for message in messages:
        await send(message)


def _idle_or_pooled(
    conn: AsyncConn | None, pool: AsyncConnectionPool
) -> contextlib.AbstractAsyncContextManager[AsyncConn]:
    """`conn` if it is between statements and unbroken, else a connection from the pool."""
    if conn is not None and not conn.broken and conn.info.transaction_status == IDLE:
        return contextlib.nullcontext(conn)
    return pool.connection()


async def _send_raw(send: Send, status: int, headers: dict[str, str], body: bytes) -> None:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
