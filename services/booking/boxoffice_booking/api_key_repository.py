"""The API keys repository: every query on `api_keys`.

Keys are random tokens given once to the client and stored only as SHA-256 hashes. The admin
CLI creates, lists and revokes them through SQLAlchemy; the API looks them up on its asyncio
pool (`find_active_key`), the same database path as the rest of a request's hot path.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from boxoffice_db.aio import AsyncConn, execute
from boxoffice_db.models import ApiKey, Client
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session
from sqlalchemy.sql import func

KEY_PREFIX = "bo_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def ensure_client(session: Session, name: str) -> uuid.UUID:
    """The id of the client called `name`, made if it is new."""
    session.execute(
        insert(Client).values(name=name).on_conflict_do_nothing(index_elements=[Client.name])
    )
    return session.scalars(select(Client.id).where(Client.name == name)).one()


def create_api_key(
    session: Session,
    name: str,
    scopes: list[str],
    key: str | None = None,
    client: str | None = None,
) -> str:
    """Store a key's hash with its scopes and return the key (shown to its owner once).

    The key belongs to `client` (made if new; by default a client named like the key): keys
    of one client share its bookings, and see no other client's.
    """
    key = key or generate_key()
    owner_id = ensure_client(session, client or name)
    session.execute(
        insert(ApiKey)
        .values(name=name, key_hash=hash_key(key), scopes=scopes, owner_id=owner_id)
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
    client: str = ""


def list_api_keys(session: Session, include_revoked: bool = False) -> list[ApiKeyInfo]:
    stmt = (
        select(ApiKey, Client.name)
        .join(Client, Client.id == ApiKey.owner_id)
        .order_by(ApiKey.created_at, ApiKey.id)
    )
    if not include_revoked:
        stmt = stmt.where(ApiKey.revoked_at.is_(None))
    return [
        ApiKeyInfo(k.id, k.name, list(k.scopes), k.created_at, k.revoked_at, k.last_used_at, c)
        for k, c in session.execute(stmt)
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


@dataclass(frozen=True)
class ActiveKey:
    id: uuid.UUID
    scopes: list[str]
    owner_id: uuid.UUID


# One statement: the key's scopes, and a note that it was used.
_FIND_ACTIVE = """
UPDATE api_keys SET last_used_at = now()
WHERE key_hash = %(key_hash)s AND revoked_at IS NULL
RETURNING id, scopes, owner_id
"""


async def find_active_key(conn: AsyncConn, key_hash: str) -> ActiveKey | None:
    """The unrevoked key with this hash (its use noted), or None."""
    row = await (await execute(conn, _FIND_ACTIVE, {"key_hash": key_hash})).fetchone()
    return ActiveKey(row.id, list(row.scopes), row.owner_id) if row is not None else None
