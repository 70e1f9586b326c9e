"""Ownership: a booking is its client's. Two clients with two keys each, operators' scopes,
every booking route and the status of tasks about a booking; and the migrations that give
existing rows to the bootstrap client and existing tasks their booking."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from alembic import command
from boxoffice_booking.auth import create_api_key
from boxoffice_db.aio import libpq_url
from boxoffice_db.engine import session_scope
from boxoffice_db.migrate import alembic_config
from boxoffice_db.models import BOOTSTRAP_OWNER_ID, OutboxEvent
from boxoffice_devstack.servers import RedisServer
from boxoffice_messaging.celery_app import create_celery_app
from boxoffice_messaging.outbox import publish_pending, task_id_for
from boxoffice_messaging.routes import EVENT_ROUTES, TASK_PURGE_RETENTION
from boxoffice_messaging.task_status import record_published
from boxoffice_settings import get_settings
from fastapi.testclient import TestClient
from psycopg.types.json import Jsonb
from sqlalchemy import select
from sqlalchemy.engine import make_url

from tests.integration.conftest import make_catalog
from tests.support.stack import Stack


@dataclass
class Keys:
    a1: str
    a2: str  # a second key of client A: shares A's bookings
    b1: str
    b2: str
    reader_all: str  # bookings:read + bookings:read:all, of an operators' client
    admin: str


@pytest.fixture(scope="module")
def keys(client: TestClient) -> Keys:
    suffix = uuid.uuid4().hex[:6]
    rw = ["bookings:read", "bookings:write"]
    with session_scope() as session:
        return Keys(
            a1=create_api_key(session, "a1", rw, client=f"Zoë Ñandú Tickets {suffix}"),
            a2=create_api_key(session, "a2", rw, client=f"Zoë Ñandú Tickets {suffix}"),
            b1=create_api_key(session, "b1", rw, client=f"josé-kiosk-{suffix}"),
            b2=create_api_key(session, "b2", ["bookings:read"], client=f"josé-kiosk-{suffix}"),
            reader_all=create_api_key(
                session, "support", ["bookings:read", "bookings:read:all"], client=f"ops-{suffix}"
            ),
            admin=create_api_key(session, "operator", ["admin"], client=f"ops-{suffix}"),
        )


def as_key(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def hold_as(client: TestClient, key: str, showtime_id: str, seat: str, email: str) -> Any:
    response = client.post(
        "/v1/bookings",
        json={"showtime_id": showtime_id, "seats": [seat], "customer": {"email": email}},
        headers=as_key(key),
    )
    assert response.status_code == 201, response.text
    return response.json()


def without_ids(problem: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in problem.items() if k not in ("request_id", "trace_id", "detail")}


@pytest.fixture
def two_bookings(client: TestClient, keys: Keys) -> tuple[dict[str, Any], dict[str, Any]]:
    showtime = make_catalog(client)["showtime"]["id"]
    mine = hold_as(client, keys.a1, showtime, "A1", "josé@exämple.com")
    theirs = hold_as(client, keys.b1, showtime, "A2", "zoë@exämple.com")
    return mine, theirs


@pytest.mark.parametrize(
    ("reader", "sees_a", "sees_b"),
    [
        ("a1", True, False),
        ("a2", True, False),
        ("b1", False, True),
        ("b2", False, True),
        ("reader_all", True, True),
        ("admin", True, True),
    ],
)
def test_reads_and_lists_show_only_the_clients_own_bookings_unless_scoped_for_all(
    client: TestClient,
    keys: Keys,
    two_bookings: tuple[dict[str, Any], dict[str, Any]],
    reader: str,
    sees_a: bool,
    sees_b: bool,
) -> None:
    key = getattr(keys, reader)
    missing = client.get(f"/v1/bookings/{uuid.uuid4()}", headers=as_key(key)).json()
    for booking, visible in zip(two_bookings, (sees_a, sees_b), strict=True):
        path = f"/v1/bookings/{booking['id']}"
        for sub in ("", "/payments"):
            response = client.get(path + sub, headers=as_key(key))
            if visible:
                assert response.status_code == 200, (reader, sub, response.text)
            else:
                # Exactly a missing booking's answer: nothing says it exists.
                assert response.status_code == 404, (reader, sub)
                assert without_ids(response.json()) == without_ids(missing) | {
                    "instance": path + sub
                }
        email = booking["customer"]["email"]
        for params in ({}, {"customer_email": email}, {"showtime_id": booking["showtime_id"]}):
            listed = client.get("/v1/bookings", params=params, headers=as_key(key)).json()
            ids = {item["id"] for item in listed["items"]}
            assert (booking["id"] in ids) == visible, (reader, params)
            if not visible:
                assert email not in str(listed)


@pytest.mark.parametrize(
    ("actor", "acts_on_a", "acts_on_b"),
    [
        ("a2", True, False),
        ("b1", False, True),
        ("reader_all", False, False),  # reads everything, changes nothing (and lacks write)
        ("admin", True, True),
    ],
)
@pytest.mark.parametrize("action", ["pay", "cancel"])
def test_payments_and_cancels_of_another_clients_booking_are_404_and_change_nothing(
    client: TestClient,
    keys: Keys,
    two_bookings: tuple[dict[str, Any], dict[str, Any]],
    actor: str,
    acts_on_a: bool,
    acts_on_b: bool,
    action: str,
) -> None:
    key = getattr(keys, actor)
    for booking, allowed in zip(two_bookings, (acts_on_a, acts_on_b), strict=True):
        path = f"/v1/bookings/{booking['id']}"
        if action == "pay":
            response = client.post(
                path + "/payments",
                json={"provider": "test", "outcome": "succeeded"},
                headers=as_key(key),
            )
            done = {"status": "CONFIRMED"}
        else:
            response = client.post(path + "/cancel", headers=as_key(key))
            done = {"status": "CANCELLED"}
        state = client.get(path, headers=as_key(keys.admin)).json()
        if allowed:
            assert response.status_code in (200, 201), (actor, action, response.text)
            assert state["status"] == done["status"]
        else:
            # A writer is told the booking does not exist; a reader lacks the scope first.
            expected = 403 if actor == "reader_all" else 404
            assert response.status_code == expected, (actor, action, response.text)
            assert state["status"] == "PENDING"
            payments = client.get(path + "/payments", headers=as_key(keys.admin)).json()
            assert payments == []


def test_a_booking_made_with_one_key_is_served_to_the_clients_other_key(
    client: TestClient, keys: Keys
) -> None:
    showtime = make_catalog(client)["showtime"]["id"]
    booking = hold_as(client, keys.a2, showtime, "B1", "ada@example.com")
    paid = client.post(
        f"/v1/bookings/{booking['id']}/payments",
        json={"provider": "test", "outcome": "succeeded"},
        headers=as_key(keys.a1),
    )
    assert paid.status_code == 201, paid.text
    assert paid.json()["booking"]["status"] == "CONFIRMED"


@dataclass
class Tasks:
    of_a: str  # the cancellation email of client A's booking
    of_b: str  # the same of client B's
    of_nobody: str  # a periodic job: about no booking


@pytest.fixture(scope="module")
def tasks(client: TestClient, keys: Keys, stack: Stack) -> Tasks:
    """Each client cancels its own booking; the relay publishes the events and writes the
    tasks' rows, as in production (to a Redis of its own: nothing lands in the shared one)."""
    showtime = make_catalog(client)["showtime"]["id"]
    ids = []
    for key, seat, email in (
        (keys.a1, "C1", "zoë@exämple.com"),
        (keys.b1, "C2", "josé@exämple.com"),
    ):
        booking = hold_as(client, key, showtime, seat, email)
        cancelled = client.post(f"/v1/bookings/{booking['id']}/cancel", headers=as_key(key))
        assert cancelled.status_code == 200, cancelled.text
        ids.append(uuid.UUID(booking["id"]))
    redis = RedisServer(stack.var / f"tasks-redis-{uuid.uuid4().hex[:6]}").start()
    try:
        app = create_celery_app(
            "test-relay", get_settings().model_copy(update={"redis_url": redis.url})
        )
        with session_scope() as session:
            while publish_pending(session, app, batch_size=500):
                pass
        with session_scope() as session:
            events = dict(
                session.execute(
                    select(OutboxEvent.aggregate_id, OutboxEvent.event_id).where(
                        OutboxEvent.aggregate_id.in_(ids),
                        OutboxEvent.event_type == "booking.cancelled",
                    )
                ).all()
            )
    finally:
        redis.stop()
    route = EVENT_ROUTES["booking.cancelled"][0]
    periodic = f"tâche-ñandú-{uuid.uuid4().hex[:8]}"
    record_published(periodic, TASK_PURGE_RETENTION, "reaper", [], {})
    return Tasks(task_id_for(events[ids[0]], route), task_id_for(events[ids[1]], route), periodic)


@pytest.mark.parametrize(
    ("reader", "sees"),
    [
        ("a1", {"of_a"}),
        ("a2", {"of_a"}),
        ("b1", {"of_b"}),
        ("b2", {"of_b"}),
        ("reader_all", {"of_a", "of_b", "of_nobody"}),
        ("admin", {"of_a", "of_b", "of_nobody"}),
    ],
)
def test_a_task_about_another_clients_booking_is_a_404_like_a_missing_task(
    client: TestClient, keys: Keys, tasks: Tasks, reader: str, sees: set[str]
) -> None:
    key = getattr(keys, reader)
    missing = client.get(f"/v1/tasks/ñ-{uuid.uuid4()}", headers=as_key(key))
    assert missing.status_code == 404, missing.text
    for which in ("of_a", "of_b", "of_nobody"):
        task_id = getattr(tasks, which)
        response = client.get(f"/v1/tasks/{task_id}", headers=as_key(key))
        if which in sees:
            assert response.status_code == 200, (reader, which, response.text)
            assert response.json()["id"] == task_id
        else:
            # Exactly a missing task's answer: nothing says it exists.
            assert response.status_code == 404, (reader, which, response.text)
            assert without_ids(response.json()) == without_ids(missing.json()) | {
                "instance": response.json()["instance"]
            }
            assert response.json()["detail"] == f"No task {task_id!r}."


def inserted_id(conn: psycopg.Connection[Any], statement: str, *params: object) -> object:
    """The id an `INSERT ... RETURNING id` made."""
    row = conn.execute(statement, params or None).fetchone()
    assert row is not None
    return row[0]


def test_the_migration_gives_existing_keys_and_bookings_to_the_bootstrap_client(
    stack: Stack,
) -> None:
    name = f"migration_{uuid.uuid4().hex[:8]}"
    admin_url = libpq_url(stack.database_url)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(stack.database_url).set(database=name).render_as_string(hide_password=False)
    try:
        config = alembic_config(url)
        command.upgrade(config, "0702")
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            conn.execute(
                "INSERT INTO api_keys (id, name, key_hash, scopes) "
                "VALUES (gen_random_uuid(), 'old', 'h', ARRAY['bookings:read'])"
            )
            venue = inserted_id(
                conn,
                "INSERT INTO venues (id, name, timezone) VALUES (gen_random_uuid(), 'V', 'UTC') "
                "RETURNING id",
            )
            screen = inserted_id(
                conn,
                "INSERT INTO screens (id, venue_id, name) VALUES (gen_random_uuid(), %s, 'S') "
                "RETURNING id",
                venue,
            )
            showtime = inserted_id(
                conn,
                "INSERT INTO showtimes (id, screen_id, film_title, starts_at, ends_at, currency) "
                "VALUES (gen_random_uuid(), %s, 'F', now(), now() + interval '2 hours', 'INR') "
                "RETURNING id",
                screen,
            )
            booking = inserted_id(
                conn,
                "INSERT INTO bookings (id, reference, showtime_id, status, customer_email, "
                "total_minor, currency, expires_at) VALUES (gen_random_uuid(), 'OLD1', %s, "
                "'PENDING', 'josé@exämple.com', 100, 'INR', now()) RETURNING id",
                showtime,
            )
            for task_id, aggregate in (("about-it", str(booking)), ("ñ-other", "no uuid")):
                conn.execute(
                    "INSERT INTO tasks (id, name, status, args_summary, retries) "
                    "VALUES (%s, 'notifier.send_booking_cancelled', 'SUCCESS', %s, 0)",
                    (task_id, Jsonb({"args": [{"aggregate_id": aggregate}], "kwargs": {}})),
                )
        command.upgrade(config, "head")
        with psycopg.connect(libpq_url(url)) as conn:
            owners = conn.execute(
                "SELECT owner_id FROM api_keys UNION ALL SELECT owner_id FROM bookings"
            ).fetchall()
            client_row = conn.execute(
                "SELECT name FROM clients WHERE id = %s", (BOOTSTRAP_OWNER_ID,)
            ).fetchone()
            linked = conn.execute("SELECT id, booking_id FROM tasks ORDER BY id").fetchall()
        assert owners == [(BOOTSTRAP_OWNER_ID,), (BOOTSTRAP_OWNER_ID,)]
        assert client_row == ("bootstrap",)
        assert linked == [("about-it", booking), ("ñ-other", None)]
        command.downgrade(config, "0702")
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
