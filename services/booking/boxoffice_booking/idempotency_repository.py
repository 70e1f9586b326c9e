"""The idempotency keys repository: claiming a key, storing or releasing its answer.

The claim is an INSERT on the primary key, so two API processes cannot both run one request;
a record whose answer was stored is replayed until it expires.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from boxoffice_db.aio import AsyncConn, execute
from psycopg.types.json import Jsonb

# A claim whose request never finished (its process died) is given up after this long.
STALE_CLAIM = timedelta(minutes=2)


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
# over; a live record is left alone, and then nothing is returned. A hold runs it as the first
# step of its own statement (`seat_repository.hold_sql`), so its parameters are named apart
# from the hold's.
CLAIM_SQL = """
INSERT INTO idempotency_keys (principal, key, method, path, request_hash, expires_at)
VALUES (%(principal)s, %(key)s, %(method)s, %(path)s, %(request_hash)s,
        now() + %(key_ttl)s::int * interval '1 second')
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
_LIVE = """
SELECT 1 FROM idempotency_keys
WHERE principal = %(principal)s AND key = %(key)s AND expires_at > now()
"""
_RELEASE = "DELETE FROM idempotency_keys WHERE principal = %(principal)s AND key = %(key)s"


def claim_params(
    principal: str, key: str, method: str, path: str, request_hash: str, ttl_seconds: int
) -> dict[str, Any]:
    """CLAIM_SQL's parameters."""
    return {
        "principal": principal,
        "key": key,
        "method": method,
        "path": path,
        "request_hash": request_hash,
        "key_ttl": ttl_seconds,
        "stale": STALE_CLAIM,
    }


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
    params = claim_params(principal, key, method, path, request_hash, ttl_seconds)
    claimed = await execute(conn, CLAIM_SQL, params)
    if await claimed.fetchone() is not None:
        return ClaimResult(Claim.CLAIMED)
    return await refused_claim(conn, principal, key, request_hash)


async def refused_claim(
    conn: AsyncConn, principal: str, key: str, request_hash: str
) -> ClaimResult:
    """Why CLAIM_SQL took no record: a stored answer to replay, a mismatch, or in progress."""
    ids = {"principal": principal, "key": key}
    record = await (await execute(conn, _RECORD, ids)).fetchone()
    if record is None:  # freed between our insert and select: the client may simply retry
        return ClaimResult(Claim.IN_PROGRESS)
    if record.request_hash != request_hash:
        return ClaimResult(Claim.MISMATCH)
    if record.response_status is None:
        return ClaimResult(Claim.IN_PROGRESS)
    return ClaimResult(
        Claim.REPLAY, record.response_status, record.response_headers, record.response_body or b""
    )


async def has_live_record(conn: AsyncConn, principal: str, key: str) -> bool:
    """Whether `key` has a record a new claim would not take over (a read: no write)."""
    found = await execute(conn, _LIVE, {"principal": principal, "key": key})
    return await found.fetchone() is not None


async def store_answer(
    conn: AsyncConn, principal: str, key: str, status: int, headers: dict[str, str], body: bytes
) -> None:
    """Store the answer to replay for this key."""
    await execute(
        conn,
        _STORE,
        {
            "principal": principal,
            "key": key,
            "status": status,
            "headers": Jsonb(headers),
            "body": body,
        },
    )


async def release_claim(conn: AsyncConn, principal: str, key: str) -> None:
    await execute(conn, _RELEASE, {"principal": principal, "key": key})
