"""The expiry metrics count committed work only: a batch that rolls back is not counted."""

from __future__ import annotations

from datetime import timedelta

import pytest
from boxoffice_bookings.expiry import expire_batch
from boxoffice_db.engine import after_commit, session_scope
from boxoffice_db.models import BookingStatus
from prometheus_client import REGISTRY

from tests.integration.test_payment_checks import lapsed_hold, status_of
from tests.support.catalog import make_showtime
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


def expired_total() -> float:
    return REGISTRY.get_sample_value("boxoffice_holds_expired_total") or 0.0


class RolledBack(Exception):
    pass


def test_after_commit_runs_only_when_the_transaction_commits(stack: Stack) -> None:
    ran: list[str] = []

    def fail_after_registering() -> None:
        with session_scope() as session:
            after_commit(session, lambda: ran.append("rolled back"))
            raise RolledBack

    with pytest.raises(RolledBack):
        fail_after_registering()
    with session_scope() as session:
        after_commit(session, lambda: ran.append("committed"))
        assert ran == []
    assert ran == ["committed"]


def test_a_rolled_back_expiry_is_not_counted_and_its_retry_is_counted_once(stack: Stack) -> None:
    showtime_id = make_showtime(rows=1, seats_per_row=4)
    lapsed = [lapsed_hold(showtime_id, seat, timedelta(seconds=5)) for seat in ("A2", "A3")]
    counted = expired_total()

    def expire_then_fail() -> None:
        with session_scope() as session:
            assert expire_batch(session, 100) >= 2
            raise RolledBack  # the commit never happens, as when the database goes away here

    with pytest.raises(RolledBack):
        expire_then_fail()
    assert expired_total() == counted
    assert {status_of(b) for b in lapsed} == {BookingStatus.PENDING}

    with session_scope() as session:
        retried = expire_batch(session, 100)
    assert {status_of(b) for b in lapsed} == {BookingStatus.EXPIRED}
    assert expired_total() == counted + retried
