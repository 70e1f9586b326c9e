"""Seat hoarding: a client may have at most BOXOFFICE_MAX_ACTIVE_HOLDS_PER_CLIENT active holds
(PENDING, unexpired), decided by PostgreSQL inside the hold statement, also when many holds of
one client arrive at once on many connections."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from boxoffice_booking.api_key_repository import ensure_client
from boxoffice_booking.auth import create_api_key
from boxoffice_booking.routes.bookings import HOLDS
from boxoffice_bookings import holds
from boxoffice_bookings.errors import ActiveHoldsLimit, SeatsUnavailable
from boxoffice_client import ActiveHoldsLimitError
from boxoffice_client.errors import error_for
from boxoffice_db.aio import libpq_url
from boxoffice_db.engine import session_scope
from boxoffice_db.models import Booking, BookingStatus
from boxoffice_settings import get_settings
from fastapi.testclient import TestClient
from psycopg.rows import namedtuple_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import func, select, update

from tests.integration.conftest import make_catalog
from tests.support.catalog import make_showtime
from tests.support.stack import Stack

LIMIT = 3


@pytest.fixture
def limited(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The API with a limit of LIMIT active holds per client."""
    monkeypatch.setenv("BOXOFFICE_MAX_ACTIVE_HOLDS_PER_CLIENT", str(LIMIT))
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def as_key(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def hold(client: TestClient, key: str, showtime_id: str, seat: str) -> Any:
    return client.post(
        "/v1/bookings",
        json={
            "showtime_id": showtime_id,
            "seats": [seat],
            "customer": {"email": "zoë@exämple.com", "phone": "+919800000001"},
        },
        headers=as_key(key),
    )


def test_a_client_at_its_limit_gets_a_409_until_one_of_its_holds_ends(
    client: TestClient, limited: None
) -> None:
    suffix = uuid.uuid4().hex[:6]
    rw = ["bookings:read", "bookings:write"]
    with session_scope() as session:
        hoarder = create_api_key(session, "h1", rw, client=f"Ñandú Reventa {suffix}")
        hoarders_other_key = create_api_key(session, "h2", rw, client=f"Ñandú Reventa {suffix}")
        other = create_api_key(session, "o1", rw, client=f"Zoë's kiosk {suffix}")
    showtime = make_catalog(client, rows=2, seats=8)["showtime"]["id"]
    limited_before = HOLDS.labels("limited")._value.get()

    made = [hold(client, hoarder, showtime, f"B{n}") for n in range(1, LIMIT + 1)]
    assert [r.status_code for r in made] == [201] * LIMIT, [r.text for r in made]

    # The limit is the client's, whichever of its keys asks.
    for key in (hoarder, hoarders_other_key):
        refused = hold(client, key, showtime, "B8")
        assert refused.status_code == 409, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        problem = refused.json()
        assert problem["type"] == "https://boxoffice.dev/problems/active-holds-limit"
        assert problem["limit"] == LIMIT
        assert "Retry-After" not in refused.headers  # final: a retry would be refused again
        # The typed client raises its own error for it.
        error = error_for(refused)
        assert isinstance(error, ActiveHoldsLimitError)
        assert error.limit == LIMIT

    # Another client is not limited by the hoarder.
    assert hold(client, other, showtime, "B7").status_code == 201
    # Nor are operators: the bootstrap key (admin) holds past the limit.
    operator = [
        client.post(
            "/v1/bookings",
            json={
                "showtime_id": showtime,
                "seats": [f"A{n}"],
                "customer": {"email": "ops@exämple.com"},
            },
        )
        for n in range(1, LIMIT + 3)
    ]
    assert [r.status_code for r in operator] == [201] * (LIMIT + 2), [r.text for r in operator]

    # A cancelled hold and an expired one (before the reaper runs) no longer count.
    cancelled = client.post(f"/v1/bookings/{made[0].json()['id']}/cancel", headers=as_key(hoarder))
    assert cancelled.status_code == 200, cancelled.text
    assert hold(client, hoarder, showtime, "B8").status_code == 201
    assert hold(client, hoarder, showtime, "B6").status_code == 409
    with session_scope() as session:
        session.execute(
            update(Booking)
            .where(Booking.id == uuid.UUID(made[1].json()["id"]))
            .values(expires_at=func.now())
        )
    assert hold(client, hoarder, showtime, "B6").status_code == 201

    assert HOLDS.labels("limited")._value.get() == limited_before + 3


def active_holds(owner: uuid.UUID) -> int:
    with session_scope() as session:
        return (
            session.scalar(
                select(func.count()).where(
                    Booking.owner_id == owner,
                    Booking.status == BookingStatus.PENDING,
                    Booking.expires_at > func.now(),
                )
            )
            or 0
        )


async def hold_at_once(
    owner: uuid.UUID, showtime: uuid.UUID, seats: list[str], limit: int, connections: int
) -> list[object]:
    """Every seat held by its own request, all at once, on `connections` connections."""
    pool = AsyncConnectionPool(
        libpq_url(get_settings().database_url),
        min_size=connections,
        max_size=connections,
        kwargs={"autocommit": True, "row_factory": namedtuple_row},
        open=False,
    )
    await pool.open(wait=True)
    start = asyncio.Event()

    async def one(seat: str) -> object:
        request = holds.HoldRequest.checked(
            showtime,
            [seat],
            "josé@exämple.com",
            None,
            600,
            10,
            owner_id=owner,
            max_active_holds=limit,
        )
        async with pool.connection() as conn:
            await start.wait()
            try:
                return await holds.hold_seats(conn, request)
            except (ActiveHoldsLimit, SeatsUnavailable) as exc:
                return exc

    try:
        tasks = [asyncio.create_task(one(seat)) for seat in seats]
        await asyncio.sleep(0.2)  # let every connection be taken before the start
        start.set()
        return await asyncio.gather(*tasks)
    finally:
        await pool.close()


@pytest.mark.parametrize("limit", [1, 7])
def test_many_holds_of_one_client_at_once_never_pass_its_limit(stack: Stack, limit: int) -> None:
    """60 holds of one client on 60 seats, fired together on 20 connections: exactly `limit`
    are made, the rest refused, none lost to a deadlock or an error. A count in the hold
    statement's own snapshot would let the holds that wait for each other all see room."""
    showtime = make_showtime(rows=6, seats_per_row=10, blocked=())
    seats = [f"{row}{n}" for row in "ABCDEF" for n in range(1, 11)]
    with session_scope() as session:
        owner = ensure_client(session, f"Sœur Ñandú {uuid.uuid4().hex[:6]}")
    outcomes = asyncio.run(hold_at_once(owner, showtime, seats, limit, connections=20))

    made = [o for o in outcomes if isinstance(o, holds.Held)]
    refused = [o for o in outcomes if isinstance(o, ActiveHoldsLimit)]
    assert len(made) == limit, outcomes
    assert len(refused) == len(seats) - limit, outcomes
    assert all(r.extensions == {"limit": limit} for r in refused)
    assert active_holds(owner) == limit


def test_with_no_limit_one_client_holds_as_much_as_it_asks(stack: Stack) -> None:
    showtime = make_showtime(rows=3, seats_per_row=10, blocked=())
    seats = [f"{row}{n}" for row in "ABC" for n in range(1, 11)]
    with session_scope() as session:
        owner = ensure_client(session, f"Großhändler {uuid.uuid4().hex[:6]}")
    outcomes = asyncio.run(hold_at_once(owner, showtime, seats, 0, connections=10))
    assert all(isinstance(o, holds.Held) for o in outcomes), outcomes
    assert active_holds(owner) == len(seats)
