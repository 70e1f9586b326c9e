"""Every event type, declared once: the proto gives its payload, this table the rest.

Adding an event type is a change to the proto (a payload message and its field in the
Envelope's `payload` oneof) and one row here. Everything else is derived from the two:

- the Envelope field that carries it (`PAYLOAD_FIELDS`, from the proto's oneof),
- the Celery tasks it is published to and their queues (`boxoffice_messaging.routes`),
- the notifier's task for each channel and the message kind it renders.

See docs/architecture.md, "Adding an event type".
"""

from __future__ import annotations

from dataclasses import dataclass

from boxoffice.booking.v1 import events_pb2
from boxoffice.messaging.v1.envelope_pb2 import Envelope
from boxoffice.notifier.v1 import notifier_pb2
from google.protobuf.message import Message

EMAIL = "email"
SMS = "sms"
CHANNELS = (EMAIL, SMS)


@dataclass(frozen=True)
class EventType:
    """One event type: its name on the wire, its payload message and who is told about it.

    `notify` is the notifier task's stem (`notifier.send_<notify>`, `_sms` added for the SMS
    channel), `kind` the message (templates) it is told with, `channels` where it is sent.
    An event with no channels is written to the outbox and routed to no task.
    """

    name: str
    payload: type[Message]
    notify: str | None = None
    kind: str | None = None
    channels: tuple[str, ...] = ()

    @property
    def payload_field(self) -> str:
        """The Envelope `payload` oneof field whose message type is this event's payload."""
        return _ONEOF_FIELDS[self.payload.DESCRIPTOR.full_name]

    def task_name(self, channel: str) -> str:
        """The notifier task that sends this event on `channel`."""
        if self.notify is None or channel not in self.channels:
            raise ValueError(f"{self.name} is not sent on {channel}")
        return f"notifier.send_{self.notify}" + ("" if channel == EMAIL else f"_{channel}")


EVENT_TYPES: tuple[EventType, ...] = (
    # No longer written (nothing consumed it) and routed to no task; still declared because the
    # Envelope keeps its `hold_created` field (removing one breaks the proto's compatibility)
    # and rows written before still parse (docs/architecture.md, "How an event flows").
    EventType("hold.created", events_pb2.HoldCreated),
    EventType(
        "booking.confirmed",
        events_pb2.BookingConfirmed,
        notify="booking_confirmation",
        kind="booking_confirmed",
        channels=(EMAIL, SMS),
    ),
    EventType(
        "booking.expired",
        events_pb2.BookingExpired,
        notify="hold_expired",
        kind="hold_expired",
        channels=(EMAIL,),
    ),
    EventType(
        "booking.cancelled",
        events_pb2.BookingCancelled,
        notify="booking_cancelled",
        kind="booking_cancelled",
        channels=(EMAIL,),
    ),
    EventType(
        "booking.refunded",
        events_pb2.BookingRefunded,
        notify="booking_refunded",
        kind="booking_refunded",
        channels=(EMAIL, SMS),
    ),
    EventType(
        "notifier.showtime_reminder_due",
        notifier_pb2.ShowtimeReminderDue,
        notify="showtime_reminder",
        kind="showtime_reminder",
        channels=(EMAIL, SMS),
    ),
)

# payload message full name -> the Envelope oneof field of that type (from the proto)
_ONEOF_FIELDS: dict[str, str] = {
    field.message_type.full_name: field.name
    for field in Envelope.DESCRIPTOR.oneofs_by_name["payload"].fields
    if field.message_type is not None
}

EVENTS: dict[str, EventType] = {event.name: event for event in EVENT_TYPES}

# event_type -> the Envelope oneof field that carries it
PAYLOAD_FIELDS: dict[str, str] = {event.name: event.payload_field for event in EVENT_TYPES}

# notifier task name -> (the event it handles, the channel it sends on)
NOTIFICATION_TASKS: dict[str, tuple[EventType, str]] = {
    event.task_name(channel): (event, channel)
    for event in EVENT_TYPES
    for channel in event.channels
}
