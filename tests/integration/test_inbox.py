"""Consumer idempotency on real PostgreSQL and Redis: one side effect per (event, channel)."""

from __future__ import annotations

import threading
import uuid

import pytest
from boxoffice_db.engine import session_scope
from boxoffice_db.models import Delivery
from boxoffice_messaging.inbox import SentMarks, default_marks, send_once
from redis import Redis

from tests.support.stack import Stack

pytestmark = pytest.mark.integration


def delivery_status(event_id: uuid.UUID) -> str | None:
    with session_scope() as session:
        row = session.get(Delivery, (event_id, "email"))
        return row.status if row else None


def test_a_redelivered_event_sends_nothing_twice(stack: Stack) -> None:
    event_id = uuid.uuid4()
    sends: list[int] = []
    assert send_once(event_id, "email", lambda: sends.append(1)) is True
    assert send_once(event_id, "email", lambda: sends.append(1)) is False
    assert sends == [1]
    assert delivery_status(event_id) == "sent"


def test_concurrent_deliveries_of_one_event_send_once(stack: Stack) -> None:
    event_id = uuid.uuid4()
    sends: list[int] = []
    barrier = threading.Barrier(6)

    def deliver() -> None:
        barrier.wait()
        send_once(event_id, "email", lambda: sends.append(1))

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sends == [1]


def test_a_send_whose_record_was_lost_is_not_repeated(stack: Stack) -> None:
    # The worker sent, marked it in Redis, and died before PostgreSQL recorded it.
    event_id = uuid.uuid4()
    default_marks().mark(event_id, "email")
    sends: list[int] = []
    assert send_once(event_id, "email", lambda: sends.append(1)) is False
    assert sends == []
    assert delivery_status(event_id) == "sent", "the lost record is written now"


def test_a_failed_send_is_neither_marked_nor_recorded(stack: Stack) -> None:
    event_id = uuid.uuid4()

    def refuse() -> None:
        raise ConnectionRefusedError("smtp down")

    with pytest.raises(ConnectionRefusedError):
        send_once(event_id, "email", refuse)
    assert not default_marks().is_marked(event_id, "email")
    assert delivery_status(event_id) != "sent"
    sends: list[int] = []
    assert send_once(event_id, "email", lambda: sends.append(1)) is True
    assert sends == [1]


def test_without_redis_the_delivery_row_alone_decides(stack: Stack) -> None:
    unreachable = SentMarks(Redis(port=1, socket_connect_timeout=0.2, socket_timeout=0.2))
    event_id = uuid.uuid4()
    sends: list[int] = []
    assert send_once(event_id, "email", lambda: sends.append(1), marks=unreachable) is True
    assert send_once(event_id, "email", lambda: sends.append(1), marks=unreachable) is False
    assert sends == [1]
