"""Consumer idempotency on real PostgreSQL and Redis: one side effect per (event, channel),
through the notifier's own `deliver` (what every notification task calls)."""

from __future__ import annotations

import threading
import uuid

import pytest
from boxoffice_db.engine import get_engine, session_scope
from boxoffice_db.models import Delivery
from boxoffice_messaging.inbox import SentMarks, default_marks
from boxoffice_messaging.redis_client import redis_client
from boxoffice_notifier.deliveries import Budgeted, DeliveryKey, Outcome, Send, deliver
from boxoffice_notifier.errors import TransientDeliveryError
from boxoffice_notifier.ratelimit import RateLimiter
from sqlalchemy import Connection, text

from tests.support.stack import Stack

pytestmark = pytest.mark.integration


def delivery_status(event_id: uuid.UUID) -> str | None:
    with session_scope() as session:
        row = session.get(Delivery, (event_id, "email"))
        return row.status if row else None


def key() -> DeliveryKey:
    return DeliveryKey(uuid.uuid4(), "email", "booking_confirmed")


def counting(sends: list[int]) -> Send:
    def send() -> None:
        sends.append(1)

    return send


def test_a_redelivered_event_sends_nothing_twice(stack: Stack) -> None:
    delivery = key()
    sends: list[int] = []
    assert deliver(delivery, lambda *_: counting(sends)) is Outcome.SENT
    assert deliver(delivery, lambda *_: counting(sends)) is Outcome.ALREADY_DONE
    assert sends == [1]
    assert delivery_status(delivery.event_id) == "sent"


def test_concurrent_deliveries_of_one_event_send_once(stack: Stack) -> None:
    delivery = key()
    sends: list[int] = []
    barrier = threading.Barrier(6)

    def run() -> None:
        barrier.wait()
        deliver(delivery, lambda *_: counting(sends))

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sends == [1]


def test_a_send_whose_record_was_lost_is_not_repeated(stack: Stack) -> None:
    # The worker sent, marked it in Redis, and died before PostgreSQL recorded it.
    delivery = key()
    default_marks().mark(delivery.event_id, "email")
    sends: list[int] = []
    assert deliver(delivery, lambda *_: counting(sends)) is Outcome.ALREADY_DONE
    assert sends == []
    assert delivery_status(delivery.event_id) == "sent", "the lost record is written now"


def test_a_send_accepted_as_its_database_connection_dies_is_recorded_and_not_repeated(
    stack: Stack,
) -> None:
    # The provider accepts, then the delivery's transaction cannot commit (PostgreSQL
    # restarting), and the Redis mark is lost as well (a Sentinel failover at that moment):
    # the send is still recorded, in a new transaction, and a redelivery sends nothing.
    lost_marks = SentMarks(
        redis_client("redis://127.0.0.1:1/0", socket_connect_timeout=0.2, socket_timeout=0.2)
    )
    delivery = key()
    sends: list[int] = []

    def plan(connection: Connection, booking: object) -> Send:
        backend = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()

        def send_then_lose_the_connection() -> str:
            sends.append(1)
            with get_engine().connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
            return "provider-id-1"

        return send_then_lose_the_connection

    assert deliver(delivery, plan, marks=lost_marks) is Outcome.SENT
    assert delivery_status(delivery.event_id) == "sent"
    assert deliver(delivery, lambda *_: counting(sends), marks=lost_marks) is Outcome.ALREADY_DONE
    assert sends == [1]
    with session_scope() as session:
        row = session.get(Delivery, (delivery.event_id, "email"))
        assert row is not None
        assert (row.provider_message_id, row.attempts) == ("provider-id-1", 1)


def test_a_failed_send_is_neither_marked_nor_recorded_as_sent(stack: Stack) -> None:
    delivery = key()

    def refuse() -> None:
        raise TransientDeliveryError("smtp down")

    with pytest.raises(TransientDeliveryError):
        deliver(delivery, lambda *_: refuse)
    assert not default_marks().is_marked(delivery.event_id, "email")
    assert delivery_status(delivery.event_id) == "retrying"
    sends: list[int] = []
    assert deliver(delivery, lambda *_: counting(sends)) is Outcome.SENT
    assert sends == [1]


def test_without_redis_the_delivery_row_alone_decides(stack: Stack) -> None:
    unreachable = SentMarks(
        redis_client("redis://127.0.0.1:1/0", socket_connect_timeout=0.2, socket_timeout=0.2)
    )
    delivery = key()
    sends: list[int] = []
    assert deliver(delivery, lambda *_: counting(sends), marks=unreachable) is Outcome.SENT
    assert deliver(delivery, lambda *_: counting(sends), marks=unreachable) is Outcome.ALREADY_DONE
    assert sends == [1]


def test_a_budgeted_send_already_marked_takes_no_budget_and_sends_nothing(stack: Stack) -> None:
    # The mark check rides in the budget's script: a message an earlier attempt sent must
    # neither go again nor spend a unit of the provider's budget.
    redis = redis_client(stack.redis_url)
    limiter = RateLimiter(redis, f"test-{uuid.uuid4()}", per_second=1)
    sends: list[int] = []
    sent_before = key()
    default_marks().mark(sent_before.event_id, "email")
    budgeted = Budgeted(limiter, counting(sends))
    assert deliver(sent_before, lambda *_: budgeted) is Outcome.ALREADY_DONE
    assert sends == []
    assert not redis.exists(limiter.key), "no budget taken"
    assert delivery_status(sent_before.event_id) == "sent"

    fresh = key()
    assert deliver(fresh, lambda *_: budgeted) is Outcome.SENT
    assert sends == [1]
    assert redis.exists(limiter.key), "one unit of the budget taken"
    assert default_marks().is_marked(fresh.event_id, "email")
