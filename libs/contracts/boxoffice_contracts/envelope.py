"""Build, encode and decode the `Envelope` that every queued event travels in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from boxoffice.booking.v1 import events_pb2
from boxoffice.messaging.v1.envelope_pb2 import Envelope
from boxoffice.notifier.v1 import notifier_pb2
from google.protobuf import json_format
from google.protobuf.message import Message

from boxoffice_contracts.events import PAYLOAD_FIELDS

SCHEMA_VERSION = 1

__all__ = ["PAYLOAD_FIELDS", "MalformedMessage", "build_envelope", "parse_envelope", "to_json"]

EventPayload = (
    events_pb2.HoldCreated
    | events_pb2.BookingConfirmed
    | events_pb2.BookingExpired
    | events_pb2.BookingCancelled
    | events_pb2.BookingRefunded
    | notifier_pb2.ShowtimeReminderDue
)


class MalformedMessage(ValueError):
    """A queued message that cannot be parsed as an Envelope; it is dead-lettered, not retried."""


def iso(moment: datetime) -> str:
    """RFC 3339 in UTC, the way every timestamp in a message is written."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def build_envelope(
    event_type: str,
    aggregate_id: uuid.UUID | str,
    payload: EventPayload,
    *,
    trace_context: dict[str, str] | None = None,
    occurred_at: datetime | None = None,
    event_id: uuid.UUID | None = None,
) -> Envelope:
    """Wrap an event payload with its id, type and time."""
    field = PAYLOAD_FIELDS.get(event_type)
    if field is None:
        raise ValueError(f"unknown event type {event_type!r}")
    envelope = Envelope(
        event_id=str(event_id or uuid.uuid4()),
        event_type=event_type,
        occurred_at=iso(occurred_at or datetime.now(UTC)),
        schema_version=SCHEMA_VERSION,
        aggregate_id=str(aggregate_id),
        trace_context=trace_context or {},
    )
    getattr(envelope, field).CopyFrom(payload)
    return envelope


def to_json(message: Message) -> dict[str, Any]:
    """The proto3 JSON mapping, with proto field names, as Celery carries it."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def parse_envelope(data: object) -> Envelope:
    """Parse a queued message; unknown (newer) fields are ignored, anything else is malformed."""
    if not isinstance(data, dict):
        raise MalformedMessage(f"expected a JSON object, got {type(data).__name__}")
    try:
        envelope = json_format.ParseDict(data, Envelope(), ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise MalformedMessage(f"not an Envelope: {exc}") from exc
    try:
        uuid.UUID(envelope.event_id)
    except ValueError as exc:
        raise MalformedMessage(f"event_id is not a UUID: {envelope.event_id!r}") from exc
    expected = PAYLOAD_FIELDS.get(envelope.event_type)
    if expected is None:
        raise MalformedMessage(f"unknown event_type {envelope.event_type!r}")
    if envelope.WhichOneof("payload") != expected:
        raise MalformedMessage(f"event_type {envelope.event_type!r} without its {expected} payload")
    return envelope
