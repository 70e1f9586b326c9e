"""The API runs its sync handlers on as many threads as its pool has connections, and its
liveness probe on the event loop, so that a probe never waits behind busy handlers."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest
from boxoffice_db.aio import libpq_url
from boxoffice_settings import get_settings
from fastapi.testclient import TestClient

from tests.integration.conftest import hold, make_catalog
from tests.support.live_api import live_api
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

POOL_SIZE = 3
PAYMENTS = POOL_SIZE + 3


def waiting_on_locks(conn: psycopg.Connection[tuple[object, ...]], application: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name = %s AND wait_event_type = 'Lock'",
        (application,),
    ).fetchone()
    assert row is not None
    return int(str(row[0]))


def test_handlers_never_outnumber_the_pools_connections_and_liveness_answers_meanwhile(
    stack: Stack, client: TestClient
) -> None:
    catalog = make_catalog(client)
    held = hold(client, catalog["showtime"]["id"], ["B1", "B2"], email="zoë@exämple.com")
    assert held.status_code == 201, held.text
    booking_id = held.json()["id"]
    application = f"threads-{uuid.uuid4().hex[:8]}"
    url = libpq_url(get_settings().database_url)
    with (
        live_api(
            stack, BOXOFFICE_DB_POOL_SIZE=str(POOL_SIZE), BOXOFFICE_SERVICE_NAME=application
        ) as api,
        psycopg.connect(url, autocommit=True) as watcher,
        httpx.Client(
            base_url=api.base_url,
            headers={"Authorization": f"Bearer {api.api_key}"},
            timeout=60,
            limits=httpx.Limits(max_connections=PAYMENTS + 2),
        ) as http,
        ThreadPoolExecutor(PAYMENTS) as clients,
        # Entered last, closed first: a failed check lets the waiting payments go.
        psycopg.connect(url) as locker,
    ):
        # Every payment's locked read of the booking waits for this transaction.
        locker.execute("SELECT id FROM bookings WHERE id = %s FOR UPDATE", (booking_id,))

        def pay() -> httpx.Response:
            return http.post(
                f"/v1/bookings/{booking_id}/payments",
                json={"provider": "test", "outcome": "succeeded"},
            )

        payments = [clients.submit(pay) for _ in range(PAYMENTS)]
        deadline = time.monotonic() + 30
        while waiting_on_locks(watcher, application) < POOL_SIZE:
            assert time.monotonic() < deadline, "the payments never reached the locked row"
            time.sleep(0.05)
        time.sleep(1.0)  # room for any further handler (and connection) to arrive
        # As many handlers as connections; the other payments wait for a thread, not for a
        # connection (the pool's overflow would have let twice as many into PostgreSQL).
        assert waiting_on_locks(watcher, application) == POOL_SIZE
        assert not any(payment.done() for payment in payments)
        # The liveness probe does not queue behind them.
        probe = http.get("/healthz", timeout=5)
        assert probe.status_code == 200, probe.text
        locker.rollback()
        statuses = sorted(payment.result(timeout=60).status_code for payment in payments)
    # One payment confirms the booking; every later one finds it confirmed.
    assert statuses == [201] + [409] * (PAYMENTS - 1)
    confirmed = client.get(f"/v1/bookings/{booking_id}")
    assert confirmed.json()["status"] == "CONFIRMED"
