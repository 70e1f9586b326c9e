"""API clients (tenants), their API keys and the idempotency records of their requests."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from boxoffice_db.models.base import Base, created_at_now, uuid_pk

# The client of the bootstrap key, and of every key and booking made before clients existed.
BOOTSTRAP_OWNER_ID = uuid.UUID("00000000-0000-0000-0000-000000000001")


def owner_column() -> Mapped[uuid.UUID]:
    return mapped_column(
        ForeignKey("clients.id"), server_default=text(f"'{BOOTSTRAP_OWNER_ID}'::uuid")
    )


class Client(Base):
    """A caller of the API (a tenant): its API keys share its bookings."""

    __tablename__ = "clients"

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = created_at_now()


# The key the API seeds from BOXOFFICE_BOOTSTRAP_API_KEY at start-up. Its row is kept once
# revoked (retention deletes other revoked keys): the tombstone is what stops the next start
# from seeding the revoked key again.
BOOTSTRAP_KEY_NAME = "bootstrap"


class ApiKey(Base):
    """An API key, stored as a SHA-256 hash of the random key; the key itself is never kept."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    created_at: Mapped[datetime] = created_at_now()
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    owner_id: Mapped[uuid.UUID] = owner_column()


class IdempotencyRecord(Base):
    """The first response to a POST with an Idempotency-Key, replayed for the same key and body.

    `principal` is the hash of the API key that sent it, so keys of two clients never collide.
    A row without a `response_status` is a request still being answered.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_expires_at", "expires_at"),)

    principal: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(500))
    request_hash: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_headers: Mapped[dict[str, Any] | None]
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = created_at_now()
    expires_at: Mapped[datetime]
