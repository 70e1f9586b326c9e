"""The booking app in-process over real PostgreSQL, Redis and a local Razorpay-speaking server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.catalog import showtime_body
from tests.support.razorpay_server import KEY_ID, KEY_SECRET, WEBHOOK_SECRET, FakeRazorpay
from tests.support.stack import API_KEY, Stack


@pytest.fixture(scope="session")
def razorpay() -> Iterator[FakeRazorpay]:
    server = FakeRazorpay().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def app_env(stack: Stack, razorpay: FakeRazorpay) -> Iterator[None]:
    overrides = {
        "BOXOFFICE_RAZORPAY_KEY_ID": KEY_ID,
        "BOXOFFICE_RAZORPAY_KEY_SECRET": KEY_SECRET,
        "BOXOFFICE_RAZORPAY_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "BOXOFFICE_RAZORPAY_BASE_URL": razorpay.base_url,
        "BOXOFFICE_CANCEL_CUTOFF_MINUTES": "60",
        "BOXOFFICE_RATE_LIMIT_REQUESTS": "100000",
        "BOXOFFICE_AUTH_FAILURE_LIMIT": "0",
    }
    saved = {name: os.environ.get(name) for name in overrides}
    os.environ.update(overrides)
    from boxoffice_booking.deps import get_redis, get_seat_cache
    from boxoffice_payments import registry
    from boxoffice_settings import get_settings

    def clear_caches() -> None:
        for cached in (get_settings, registry._cached, get_redis, get_seat_cache):
            cached.cache_clear()

    clear_caches()
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    clear_caches()


@pytest.fixture(scope="session")
def client(app_env: None) -> Iterator[TestClient]:
    from boxoffice_booking.app import create_app

    with TestClient(
        create_app(),
        headers={"Authorization": f"Bearer {API_KEY}"},
        raise_server_exceptions=False,
    ) as client:
        yield client


def post(client: TestClient, path: str, body: Any, **headers: str) -> Any:
    response = client.post(path, json=body, headers=headers)
    assert response.status_code in (200, 201), response.text
    return response.json()


def make_catalog(
    client: TestClient,
    rows: int = 3,
    seats: int = 8,
    starts_in: timedelta = timedelta(days=2),
    blocked: tuple[int, ...] = (),
) -> dict[str, Any]:
    """A venue, a screen of `rows` x `seats` (row C premium) and one showtime, via the API."""
    venue = post(client, "/v1/venues", {"name": f"Venue {uuid.uuid4().hex[:6]}"})
    labels = "ABCDEFGHIJ"[:rows]
    screen = post(
        client,
        f"/v1/venues/{venue['id']}/screens",
        {
            "name": "Screen 1",
            "rows": [
                {
                    "label": r,
                    "seats": seats,
                    "category": "premium" if r == "C" else "standard",
                    "blocked": list(blocked) if r == "A" else [],
                }
                for r in labels
            ],
        },
    )
    starts = datetime.now(UTC) + starts_in
    prices = {"standard": 20000, "premium": 35000} if rows >= 3 else {"standard": 20000}
    showtime = post(
        client, "/v1/showtimes", showtime_body(screen["id"], "Integration Film", starts, prices)
    )
    return {"venue": venue, "screen": screen, "showtime": showtime}


def hold(
    client: TestClient, showtime_id: str, seats: list[str], email: str = "ada@example.com"
) -> Any:
    return client.post(
        "/v1/bookings",
        json={"showtime_id": showtime_id, "seats": seats, "customer": {"email": email}},
    )
