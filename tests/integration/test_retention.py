"""Data retention on real PostgreSQL: old personal data anonymised, old rows deleted, no more."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from boxoffice_booking.auth import create_api_key, hash_key
from boxoffice_bookings import cancellation
from boxoffice_db.engine import session_scope
from boxoffice_db.models import ApiKey, Booking, BookingStatus, Delivery, OutboxEvent
from boxoffice_reaper.retention import purge_expired_keys, purge_retention
from boxoffice_reaper.retention_repository import ANONYMISED_EMAIL
from boxoffice_settings import get_settings
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from tests.integration.conftest import hold as api_hold
from tests.integration.conftest import make_catalog
from tests.support import catalog
from tests.support.catalog import make_showtime
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

# Retention runs as if it were this far in the future, so rows made now count as old.
LATER = timedelta(days=400)


def hold(showtime_id: uuid.UUID, seat: str, email: str) -> uuid.UUID:
    return catalog.hold(showtime_id, [seat], email, "+919800000001").id


def booking(booking_id: uuid.UUID) -> Booking:
    with session_scope() as session:
        found = session.get(Booking, booking_id)
        assert found is not None
        return found


def test_finished_bookings_are_anonymised_after_the_retention_period(stack: Stack) -> None:
    showtime_id = make_showtime(rows=1, seats_per_row=6)
    tag = uuid.uuid4().hex[:8]
    cancelled = hold(showtime_id, "A2", f"cancel-{tag}@example.com")
    pending = hold(showtime_id, "A3", f"pending-{tag}@example.com")
    paid = hold(showtime_id, "A4", f"paid-{tag}@example.com")
    with session_scope() as session:
        cancellation.cancel_booking(session, cancelled, cutoff_minutes=0)
        # Confirmed as the payment path would leave it (that path is the booking API's own).
        session.execute(
            update(Booking)
            .where(Booking.id == paid)
            .values(status=BookingStatus.CONFIRMED, confirmed_at=datetime.now(UTC))
        )
    settings = get_settings()

    # Not old enough yet: nothing changes.
    purge_retention(settings, now=datetime.now(UTC) + timedelta(days=1))
    assert booking(cancelled).customer_email == f"cancel-{tag}@example.com"

    purge_retention(settings, now=datetime.now(UTC) + LATER)
    gone = booking(cancelled)
    assert gone.customer_email == ANONYMISED_EMAIL
    assert gone.customer_phone is None
    assert gone.anonymised_at is not None
    # A live hold and a confirmed booking keep their customer: they are still in use.
    assert booking(pending).customer_email == f"pending-{tag}@example.com"
    assert booking(paid).customer_email == f"paid-{tag}@example.com"
    # The figures survive for reports; only the person is gone.
    assert gone.total_minor > 0


def test_old_outbox_and_delivery_rows_are_deleted_but_unsent_events_never(stack: Stack) -> None:
    old, recent, unsent = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    long_ago = datetime.now(UTC) - timedelta(days=60)
    with session_scope() as session:
        for event_id, published in ((old, long_ago), (recent, datetime.now(UTC)), (unsent, None)):
            session.add(
                OutboxEvent(
                    event_id=event_id,
                    event_type="booking.expired",
                    aggregate_id=uuid.uuid4(),
                    payload={},
                    published_at=published,
                    created_at=long_ago,
                )
            )
            session.add(
                Delivery(event_id=event_id, channel="email", status="sent", created_at=long_ago)
            )
        session.add(Delivery(event_id=recent, channel="sms", status="sent"))

    counts = purge_retention(get_settings())

    with session_scope() as session:
        left = set(session.scalars(select(OutboxEvent.event_id)))
        deliveries = set(session.execute(select(Delivery.event_id, Delivery.channel)).tuples())
    assert old not in left
    assert {recent, unsent} <= left
    assert (recent, "sms") in deliveries
    assert not {(old, "email"), (recent, "email"), (unsent, "email")} & deliveries
    assert counts["outbox.deleted"] >= 1
    assert counts["deliveries.deleted"] >= 3


def test_long_revoked_api_keys_are_deleted_and_live_ones_kept(stack: Stack) -> None:
    with session_scope() as session:
        revoked_key = create_api_key(session, "old", ["bookings:read"])
        live_key = create_api_key(session, "live", ["bookings:read"])
        session.execute(
            update(ApiKey)
            .where(ApiKey.key_hash == hash_key(revoked_key))
            .values(revoked_at=datetime.now(UTC) - timedelta(days=365))
        )
    purge_expired_keys(get_settings())
    with session_scope() as session:
        hashes = set(session.scalars(select(ApiKey.key_hash)))
    assert hash_key(revoked_key) not in hashes
    assert hash_key(live_key) in hashes


def test_an_anonymised_booking_is_still_answered_by_the_api(client: TestClient) -> None:
    """Issue 14, finding 6: the anonymised address is not an EmailStr; reads must not 500."""
    showtime = make_catalog(client)["showtime"]
    email = f"zoë-{uuid.uuid4().hex[:6]}@exämple.com"
    booking = api_hold(client, showtime["id"], ["B3"], email).json()
    assert client.post(f"/v1/bookings/{booking['id']}/cancel").status_code == 200

    purge_retention(get_settings(), now=datetime.now(UTC) + LATER)
    read = client.get(f"/v1/bookings/{booking['id']}")
    assert read.status_code == 200, read.text
    assert read.json()["customer"]["email"] == ANONYMISED_EMAIL
    listed = client.get("/v1/bookings", params={"showtime_id": showtime["id"]})
    assert listed.status_code == 200, listed.text
    assert [b["customer"]["email"] for b in listed.json()["items"]] == [ANONYMISED_EMAIL]
    by_status = client.get("/v1/bookings", params={"status": "CANCELLED", "limit": 100})
    assert by_status.status_code == 200, by_status.text


def test_a_revoked_bootstrap_key_stays_revoked_after_retention_and_a_restart(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14, finding 7: retention keeps the bootstrap key's tombstone."""
    from boxoffice_booking.api_key_repository import revoke_api_key
    from boxoffice_booking.app import seed_bootstrap_key

    key = "bo_bootstrap_" + uuid.uuid4().hex + "x" * 20
    monkeypatch.setenv("BOXOFFICE_BOOTSTRAP_API_KEY", key)
    get_settings.cache_clear()
    try:
        seed_bootstrap_key()  # the API's start
        with session_scope() as session:
            row = session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_key(key))).one()
            assert revoke_api_key(session, row.id)
            session.execute(
                update(ApiKey)
                .where(ApiKey.id == row.id)
                .values(revoked_at=datetime.now(UTC) - timedelta(days=365))
            )
        purge_expired_keys(get_settings())
        seed_bootstrap_key()  # the API's next start
        with session_scope() as session:
            rows = session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_key(key))).all()
        assert [r.revoked_at is not None for r in rows] == [True]
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
