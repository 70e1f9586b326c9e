"""`boxoffice_db.kept`: Core statements compiled once and run on kept cursors, inside
SQLAlchemy's transaction.

Real PostgreSQL through the process's own engine (prepared statements on, so a statement run
often is prepared on the server as in production), and the notifier's own delivery statements.
What running outside SQLAlchemy's execution must not change: each run's rows are its own,
whatever its parameters (an address in Cyrillic, a value given then not); the statement's own
values are bound; the transaction is SQLAlchemy's (a rollback undoes the statement); a failure
reaches the retry policy as SQLAlchemy's error did (a duplicate is permanent, a lost connection
transient), and the pool replaces a connection the server dropped.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
import sqlalchemy.exc
from boxoffice_db import kept
from boxoffice_db.engine import connection_scope, get_engine
from boxoffice_db.kept import DriverStatement
from boxoffice_db.models import Delivery
from boxoffice_messaging.retry import Verdict, classify
from boxoffice_notifier import repository
from boxoffice_notifier.deliveries import DeliveryKey
from boxoffice_telemetry.pg_async import TracedCursor
from sqlalchemy import bindparam, insert, select, text

from tests.support.catalog import make_booking, make_showtime
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


def _status(key: DeliveryKey) -> tuple[str, int, str | None] | None:
    with connection_scope() as connection:
        row = connection.execute(
            select(Delivery.status, Delivery.attempts, Delivery.error).where(
                Delivery.event_id == key.event_id, Delivery.channel == key.channel
            )
        ).one_or_none()
    return None if row is None else (row.status, row.attempts, row.error)


def test_the_delivery_statements_read_and_write_each_delivery_on_one_kept_cursor(
    stack: Stack,
) -> None:
    showtime = make_showtime(film="Андрей Рублёв")
    paid = make_booking(showtime, ["B1", "B2"], email="ёжик@пример.рф", phone=None)
    held = make_booking(showtime, ["C3"], confirm=False)
    keys = [
        DeliveryKey(uuid.uuid4(), "email", "booking_confirmed", paid),
        DeliveryKey(uuid.uuid4(), "sms", "booking_confirmed", held),
        DeliveryKey(uuid.uuid4(), "email", "booking_confirmed", uuid.uuid4()),  # no such booking
    ]
    # Each DBAPI connection's cursor for the claim, every time the claim ran on it.
    claim_cursors: dict[int, list[int]] = {}
    # More runs than psycopg's threshold for preparing a statement on the server.
    for _ in range(3):
        for key in keys:
            with connection_scope() as connection:
                status, details = repository.lock_delivery_with_booking(connection, key)
                assert status in ("pending", "retrying")
                repository.set_delivery(
                    connection, key, status="retrying", count_attempt=True, error="451 try later"
                )
                pooled = connection.connection
                claim = pooled.info["boxoffice_kept_cursors"][repository._LOCK_AND_DETAILS.sql]
                claim_cursors.setdefault(id(pooled.driver_connection), []).append(id(claim))
            if key.booking_id == paid:
                assert details is not None
                assert (details[2], details[3], details[4]) == (
                    "CONFIRMED",
                    "ёжик@пример.рф",
                    None,
                )
                assert details[6] == "Андрей Рублёв"
                assert details[12] == ["B1", "B2"]
                assert isinstance(details[10], datetime)
                assert details[10].tzinfo is not None
            elif key.booking_id == held:
                assert details is not None
                assert details[2] == "PENDING"
                assert details[12] == ["C3"]
            else:
                assert details is None
    # One cursor per connection for the claim, kept across transactions (one connection at a
    # time here, so the pool hands the same one back).
    assert any(len(ids) > 1 for ids in claim_cursors.values()), claim_cursors
    assert all(len(set(ids)) == 1 for ids in claim_cursors.values()), claim_cursors
    # Each run was counted once, by the statement's own `attempts + 1`.
    for key in keys:
        assert _status(key) == ("retrying", 3, "451 try later")
    with connection_scope() as connection:
        repository.set_delivery(connection, keys[0], status="sent", sent_at=datetime.now(UTC))
        assert repository.lock_delivery(connection, keys[0]) == "sent"
    assert _status(keys[0]) == ("sent", 3, "451 try later")


def test_a_kept_statement_is_part_of_sqlalchemys_transaction(stack: Stack) -> None:
    key = DeliveryKey(uuid.uuid4(), "email", "booking_confirmed", None)

    def claim_then_fail() -> None:
        with connection_scope() as connection:
            assert repository.lock_delivery(connection, key) == "pending"
            raise RuntimeError("after the claim")

    with pytest.raises(RuntimeError, match="after the claim"):
        claim_then_fail()
    assert _status(key) is None
    with connection_scope() as connection:
        assert repository.lock_delivery(connection, key) == "pending"
        # A Core statement on the same connection sees what the kept cursor wrote.
        seen = connection.execute(
            select(Delivery.status).where(Delivery.event_id == key.event_id)
        ).scalar_one()
        assert seen == "pending"
    assert _status(key) == ("pending", 0, None)


def test_a_statement_that_leaves_a_python_default_to_sqlalchemy_is_refused() -> None:
    without_attempts = insert(Delivery).values(
        event_id=bindparam("event_id"), channel=bindparam("channel"), status="pending"
    )
    with pytest.raises(ValueError, match="attempts"):
        DriverStatement.of(without_attempts)


_INSERT = DriverStatement.of(
    insert(Delivery).values(
        event_id=bindparam("event_id"), channel="email", status="pending", attempts=0
    )
)


def test_failures_reach_the_retry_policy_as_sqlalchemys_errors(stack: Stack) -> None:
    event_id = uuid.uuid4()
    with connection_scope() as connection:
        kept.execute(connection, _INSERT, {"event_id": event_id})
    # A duplicate never gets better: permanent, as SQLAlchemy's IntegrityError was.
    with pytest.raises(sqlalchemy.exc.IntegrityError) as duplicate, connection_scope() as c:
        kept.execute(c, _INSERT, {"event_id": event_id})
    assert isinstance(duplicate.value.orig, psycopg.errors.UniqueViolation)
    assert "[SQL: INSERT INTO deliveries" in str(duplicate.value)
    assert "[parameters:" not in str(duplicate.value)  # the statement, never its values
    assert classify(duplicate.value) is Verdict.PERMANENT

    # The server drops the connection (a restart, a failover): transient, and the pool hands
    # out a working connection next time.
    def insert_on_a_dropped_connection() -> None:
        with connection_scope() as c:
            pid = c.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with get_engine().connect() as killer:
                killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                killer.commit()
            kept.execute(c, _INSERT, {"event_id": uuid.uuid4()})

    with pytest.raises(sqlalchemy.exc.OperationalError) as lost:
        insert_on_a_dropped_connection()
    assert lost.value.connection_invalidated
    assert classify(lost.value) is Verdict.TRANSIENT
    again = uuid.uuid4()
    with connection_scope() as connection:
        kept.execute(connection, _INSERT, {"event_id": again})
    assert _status(DeliveryKey(again, "email", "booking_confirmed")) == ("pending", 0, None)


def test_an_engines_kept_cursors_take_the_class_tracing_names(stack: Stack) -> None:
    engine = get_engine()

    def cursor_of(connection: Any) -> Any:
        kept.execute(connection, _INSERT, {"event_id": uuid.uuid4()})
        return connection.connection.info["boxoffice_kept_cursors"][_INSERT.sql]

    with connection_scope() as connection:
        plain = cursor_of(connection)
        assert type(plain) is psycopg.Cursor
    kept.use_cursor_class(engine, TracedCursor)
    try:
        with connection_scope() as connection:
            assert isinstance(cursor_of(connection), TracedCursor)
    finally:
        kept.use_cursor_class(engine, psycopg.Cursor)
