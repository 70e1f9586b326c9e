"""API keys: random tokens given once to the client, stored only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets
from typing import Annotated

from boxoffice_db.models import ApiKey
from fastapi import Depends, Header
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from boxoffice_booking.deps import SessionDep
from boxoffice_booking.problems import Forbidden, Unauthorized

SCOPES = ("bookings:read", "bookings:write", "catalog:write", "admin")
KEY_PREFIX = "bo_"


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


class Principal:
    def __init__(self, key_id: str, scopes: list[str]) -> None:
        self.key_id = key_id
        self.scopes = frozenset(scopes)

    def require(self, scope: str) -> None:
        if scope not in self.scopes and "admin" not in self.scopes:
            raise Forbidden(f"This API key needs the {scope!r} scope.", required_scope=scope)


def authenticate(
    session: SessionDep, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    """Resolve `Authorization: Bearer <key>` to the key's scopes."""
    if not authorization:
        raise Unauthorized("Send 'Authorization: Bearer <api key>'.")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send 'Authorization: Bearer <api key>'.")
    row = session.execute(
        select(ApiKey.id, ApiKey.scopes).where(
            ApiKey.key_hash == hash_key(token.strip()), ApiKey.revoked_at.is_(None)
        )
    ).first()
    # End the lookup's transaction so its connection goes back to the pool now. FastAPI runs
    # each sync dependency and the endpoint as separate thread-pool jobs; a request that kept
    # a connection while queued for its next thread could, under load, leave every thread
    # waiting for a connection that only a queued request can release (found by `make bench`).
    session.rollback()
    if row is None:
        raise Unauthorized("The API key is unknown or revoked.")
    return Principal(str(row.id), list(row.scopes))


PrincipalDep = Annotated[Principal, Depends(authenticate)]


def require_scope(scope: str) -> object:
    def check(principal: PrincipalDep) -> Principal:
        principal.require(scope)
        return principal

    return Depends(check)
