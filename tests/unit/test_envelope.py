"""The Envelope's JSON mapping: what producers write, consumers parse."""

from __future__ import annotations

import uuid

import pytest
from boxoffice.booking.v1 import events_pb2
from boxoffice_contracts.envelope import MalformedMessage, build_envelope, parse_envelope, to_json


def confirmed() -> dict[str, object]:
    booking_id = uuid.uuid4()
    return to_json(
        build_envelope(
            "booking.confirmed",
            booking_id,
            events_pb2.BookingConfirmed(booking_id=str(booking_id), seats=["A1"], total_minor=100),
        )
    )


def test_a_produced_envelope_parses_back_with_its_payload() -> None:
    data = confirmed()
    envelope = parse_envelope(data)
    assert envelope.event_type == "booking.confirmed"
    assert envelope.WhichOneof("payload") == "booking_confirmed"
    assert list(envelope.booking_confirmed.seats) == ["A1"]
    assert envelope.event_id == data["event_id"]


def test_an_unknown_newer_field_is_ignored() -> None:
    data = confirmed()
    data["added_in_v2"] = {"anything": 1}
    assert parse_envelope(data).event_type == "booking.confirmed"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: "not a dict",
        lambda d: {**d, "event_id": "not-a-uuid"},
        lambda d: {**d, "event_type": "booking.teleported"},
        lambda d: {**d, "event_type": "booking.expired"},
        lambda d: {**d, "schema_version": "many"},
    ],
)
def test_a_malformed_message_is_rejected_with_a_reason(mutate: object) -> None:
    with pytest.raises(MalformedMessage):
        parse_envelope(mutate(confirmed()))  # type: ignore[operator]
