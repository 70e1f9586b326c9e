"""The proto contracts themselves: generated code fresh, every event typed, routed and consumed."""

from __future__ import annotations

import inspect
import uuid

import pytest
from boxoffice.messaging.v1.envelope_pb2 import Envelope
from boxoffice_codegen.protogen import stale_files
from boxoffice_contracts.envelope import (
    PAYLOAD_FIELDS,
    MalformedMessage,
    build_envelope,
    parse_envelope,
    to_json,
)
from boxoffice_messaging.routes import EVENT_ROUTES
from boxoffice_settings import get_settings
from celery import Celery
from google.protobuf.message import Message

from tests.support.stack import Stack

PAYLOAD_ONEOF = Envelope.DESCRIPTOR.oneofs_by_name["payload"]


@pytest.fixture(scope="module")
def consumer_apps(stack: Stack) -> dict[str, Celery]:
    """Each consuming service's Celery app, built by the service itself from the settings."""
    from boxoffice_notifier.main import create_app as notifier_app
    from boxoffice_reaper.main import create_app as reaper_app

    return {"notifier": notifier_app(), "reaper": reaper_app()}


def test_the_generated_code_matches_proto() -> None:
    assert stale_files() == [], "generated code is stale: run `make proto` and commit"


def test_every_envelope_payload_has_exactly_one_event_type() -> None:
    oneof_fields = {field.name for field in PAYLOAD_ONEOF.fields}
    assert set(PAYLOAD_FIELDS.values()) == oneof_fields
    assert len(set(PAYLOAD_FIELDS.values())) == len(PAYLOAD_FIELDS)


def test_every_event_type_has_its_routes_declared() -> None:
    assert set(EVENT_ROUTES) == set(PAYLOAD_FIELDS)


@pytest.mark.parametrize("event_type", sorted(PAYLOAD_FIELDS))
def test_every_event_type_round_trips_through_the_queue_encoding(event_type: str) -> None:
    payload: Message = type(getattr(Envelope(), PAYLOAD_FIELDS[event_type]))()
    if "booking_id" in payload.DESCRIPTOR.fields_by_name:
        payload.booking_id = str(uuid.uuid4())  # type: ignore[attr-defined]
    traceparent = f"00-{'a' * 32}-{'b' * 16}-01"
    envelope = build_envelope(
        event_type,
        uuid.uuid4(),
        payload,  # type: ignore[arg-type]
        trace_context={"traceparent": traceparent},
    )
    parsed = parse_envelope(to_json(envelope))
    assert parsed == envelope
    assert parsed.trace_context["traceparent"] == traceparent


def test_an_event_type_with_another_events_payload_is_malformed() -> None:
    confirmed = to_json(
        build_envelope("booking.confirmed", uuid.uuid4(), Envelope().booking_confirmed)
    )
    confirmed["event_type"] = "booking.cancelled"
    with pytest.raises(MalformedMessage):
        parse_envelope(confirmed)


def test_every_routed_task_is_registered_by_a_consumer_on_that_queue(
    consumer_apps: dict[str, Celery],
) -> None:
    apps = consumer_apps
    registered = {name for app in apps.values() for name in app.tasks}
    queues = {queue.name for app in apps.values() for queue in app.conf.task_queues}
    for event_type, routes in EVENT_ROUTES.items():
        for route in routes:
            assert route.task in registered, f"{event_type}: nobody consumes {route.task}"
            assert route.queue in queues, f"{event_type}: no queue {route.queue}"


def test_every_routed_task_takes_one_envelope_argument(consumer_apps: dict[str, Celery]) -> None:
    apps = consumer_apps
    tasks = {name: task for app in apps.values() for name, task in app.tasks.items()}
    for routes in EVENT_ROUTES.values():
        for route in routes:
            signature = inspect.signature(tasks[route.task].run)
            signature.bind({"event_id": "..."})  # raises TypeError if it does not fit


def test_every_scheduled_task_is_registered_by_a_consumer_and_takes_its_arguments(
    consumer_apps: dict[str, Celery],
) -> None:
    from boxoffice_scheduler.schedule import build_schedule

    schedule = build_schedule(get_settings())
    apps = consumer_apps
    tasks = {name: task for app in apps.values() for name, task in app.tasks.items()}
    queues = {queue.name for app in apps.values() for queue in app.conf.task_queues}
    assert schedule
    for job in schedule:
        assert job.task in tasks, f"schedule {job.name!r}: nobody consumes {job.task}"
        assert job.queue in queues, job.name
        signature = inspect.signature(tasks[job.task].run)
        signature.bind(**job.kwargs)


def test_notifier_tasks_are_the_ones_the_event_table_derives(
    consumer_apps: dict[str, Celery],
) -> None:
    """The names on the notifier's decorators are exactly the event table's notification tasks."""
    from boxoffice_contracts.events import NOTIFICATION_TASKS

    notifier = consumer_apps["notifier"]
    sends = {
        name
        for name in notifier.tasks
        if name.startswith("notifier.send_") and name not in SCHEDULED_NOTIFIER_JOBS
    }
    assert sends == set(NOTIFICATION_TASKS)


def test_every_event_type_is_declared_once_with_a_payload_in_the_envelope() -> None:
    from boxoffice_contracts.events import EVENT_TYPES

    names = [event.name for event in EVENT_TYPES]
    assert len(names) == len(set(names))
    # Each row's payload message is one field of the Envelope's oneof, and no field is left out.
    assert sorted(event.payload_field for event in EVENT_TYPES) == sorted(
        field.name for field in PAYLOAD_ONEOF.fields
    )


# Periodic jobs of the notifier, named like senders but sent by the scheduler, not by events.
SCHEDULED_NOTIFIER_JOBS = {"notifier.send_showtime_reminders", "notifier.send_daily_report"}
