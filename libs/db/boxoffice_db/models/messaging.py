"""Messaging: the outbox, the notifier's deliveries and reminders, task status, dead letters."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from boxoffice_db.models.base import Base, created_at_now, uuid_pk


class OutboxEvent(Base):
    """An event written in the same transaction as the state change it announces."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
        # The relay checks each aggregate's oldest unsent event to publish in order.
        Index(
            "ix_outbox_unpublished_aggregate",
            "aggregate_id",
            "id",
            postgresql_where=text("published_at IS NULL"),
        ),
        Index("ix_outbox_published_at", "published_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    aggregate_id: Mapped[uuid.UUID]
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = created_at_now()
    published_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class Delivery(Base):
    """One row per (event, channel): the notifier's inbox, so a redelivery sends nothing twice.

    `status` is pending, sent, failed (permanent, e.g. SMTP 5xx) or skipped (opted out, no
    phone number, channel not configured); `attempts` counts tries, including retries.
    """

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_created_at", "created_at"),)

    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = created_at_now()
    sent_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    kind: Mapped[str | None] = mapped_column(String(40))
    booking_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    provider_message_id: Mapped[str | None] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class BookingReminder(Base):
    """A booking whose showtime reminder was claimed: each booking is reminded once."""

    __tablename__ = "booking_reminders"

    booking_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("bookings.id", ondelete="CASCADE"), primary_key=True
    )
    claimed_at: Mapped[datetime] = mapped_column(server_default=func.now())


class TaskStatus(enum.StrEnum):
    """The life of a background task, as Celery names its states."""

    PENDING = "PENDING"
    STARTED = "STARTED"
    RETRY = "RETRY"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    REVOKED = "REVOKED"


class TaskRecord(Base):
    """A background task's status, progress, outcome and timings, kept from Celery signals.

    `args_summary` holds ids and types only: task arguments may carry personal data.
    `booking_id` is the booking the task is about (the relay records its event's aggregate),
    so a task is shown to that booking's client only; tasks about no booking to operators.
    """

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_name_created_at", "name", "created_at"),
        Index("ix_tasks_status_created_at", "status", "created_at"),
        Index("ix_tasks_created_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    queue: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[TaskStatus] = mapped_column(
        Enum(TaskStatus, name="task_status", values_callable=lambda e: [m.value for m in e])
    )
    progress_current: Mapped[int | None] = mapped_column(Integer)
    progress_total: Mapped[int | None] = mapped_column(Integer)
    progress_message: Mapped[str | None] = mapped_column(String(500))
    args_summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # No foreign key: a status row must never fail to be written for want of its booking.
    booking_id: Mapped[uuid.UUID | None]
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = created_at_now()
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    runtime_seconds: Mapped[float | None]
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class DeadLetter(Base):
    """A message a service gave up on: the original message, why, and after how many attempts.

    `service` makes it a per-service queue; replaying re-sends `message` to `task_name` on
    `queue` and stamps `replayed_at`, so the row stays as a record.
    """

    __tablename__ = "dead_letters"
    __table_args__ = (
        Index("ix_dead_letters_service_created_at", "service", "created_at"),
        # A message redelivered after it was dead-lettered (a crash before the ack) is the
        # same dead letter, not a second one.
        UniqueConstraint("service", "task_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    service: Mapped[str] = mapped_column(String(64))
    task_name: Mapped[str] = mapped_column(String(200))
    queue: Mapped[str] = mapped_column(String(100))
    task_id: Mapped[str | None] = mapped_column(String(64))
    event_id: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[dict[str, Any]]
    error_type: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = created_at_now()
    replayed_at: Mapped[datetime | None]
    replay_task_id: Mapped[str | None] = mapped_column(String(64))
