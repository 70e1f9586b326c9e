"""boxoffice_client against the live API (a real uvicorn process on PostgreSQL and Redis).

Faults come from a real HTTP proxy between the client and the API (tests/support/faulty_proxy).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from boxoffice_client import (
    AuthenticationError,
    BoxofficeClient,
    NotFoundError,
    RetryPolicy,
    SeatsUnavailableError,
    ServiceUnavailableError,
    TransportError,
    UnprocessableEntityError,
)
from boxoffice_devstack.servers import free_port

from tests.support.catalog import make_showtime
from tests.support.faulty_proxy import Answer, FaultyProxy
from tests.support.live_api import LiveApi
from tests.support.stack import ROOT, Stack

pytestmark = pytest.mark.integration

FAST = RetryPolicy(max_attempts=4, backoff_base=0.05, backoff_max=0.2)


@pytest.fixture
def client(api: LiveApi, proxy: FaultyProxy) -> Iterator[BoxofficeClient]:
    with BoxofficeClient(proxy.url, api.api_key, retry=FAST) as client:
        yield client


@pytest.fixture
def showtime_id(stack: Stack) -> uuid.UUID:
    return make_showtime(rows=3, seats_per_row=6)


def test_books_and_pays_for_seats_with_typed_results(
    client: BoxofficeClient, showtime_id: uuid.UUID
) -> None:
    seat_map = client.seat_map(showtime_id)
    assert seat_map.showtime_id == showtime_id
    assert "A1" not in seat_map.available()  # blocked
    booking = client.create_booking(showtime_id, ["B2", "B3"], "ada@example.com", "+919800000001")
    assert booking.status == "PENDING"
    assert [seat.label for seat in booking.seats] == ["B2", "B3"]
    assert booking.total_minor == sum(seat.price_minor for seat in booking.seats)
    assert booking.expires_at > booking.created_at
    payment = client.pay(booking.id)
    assert payment.booking.status == "CONFIRMED"
    assert client.booking(booking.id).confirmed_at is not None
    states = {seat.label: seat.status for seat in client.seat_map(showtime_id).seats}
    assert states["B2"] == states["B3"] == "sold"
    cancelled = client.cancel(booking.id)
    assert cancelled.status == "CANCELLED"


def test_every_post_carries_an_idempotency_key(
    client: BoxofficeClient, proxy: FaultyProxy, showtime_id: uuid.UUID
) -> None:
    booking = client.create_booking(showtime_id, ["C1"], "ada@example.com")
    client.cancel(booking.id, idempotency_key="cancel-" + str(booking.id))
    posts = proxy.requests_to("POST", "/v1/bookings")
    assert len(posts) == 2
    uuid.UUID(str(posts[0].idempotency_key))
    assert posts[1].idempotency_key == f"cancel-{booking.id}"
    assert all(s.idempotency_key is None for s in proxy.requests_to("GET", "/"))


def test_seats_someone_holds_raise_a_conflict_naming_them_without_retrying(
    client: BoxofficeClient, proxy: FaultyProxy, showtime_id: uuid.UUID
) -> None:
    client.create_booking(showtime_id, ["C2", "C3"], "first@example.com")
    with pytest.raises(SeatsUnavailableError) as raised:
        client.create_booking(showtime_id, ["C3", "C4"], "second@example.com")
    assert raised.value.status == 409
    assert raised.value.seats == ["C3"]
    assert raised.value.problem.type == "https://boxoffice.dev/problems/seats-unavailable"
    # A real conflict (no Retry-After) is final: the second hold was sent once.
    assert len(proxy.requests_to("POST", "/v1/bookings")) == 2


def test_api_errors_arrive_as_typed_problems(
    client: BoxofficeClient, api: LiveApi, showtime_id: uuid.UUID
) -> None:
    with pytest.raises(NotFoundError) as missing:
        client.booking(uuid.uuid4())
    assert missing.value.problem.slug == "not-found"
    with pytest.raises(UnprocessableEntityError) as invalid:
        client.create_booking(showtime_id, ["B1"], "not-an-email")
    assert any(e["loc"][-1] == "email" for e in invalid.value.problem.extensions["errors"])
    with (
        BoxofficeClient(api.base_url, "bo_wrong_key") as stranger,
        pytest.raises(AuthenticationError) as unauthorized,
    ):
        stranger.seat_map(showtime_id)
    assert unauthorized.value.response.headers["www-authenticate"] == "Bearer"


def test_a_503_with_retry_after_is_waited_for_and_retried_with_the_same_key(
    client: BoxofficeClient, proxy: FaultyProxy, showtime_id: uuid.UUID
) -> None:
    proxy.inject(Answer(503, retry_after="1"))
    started = time.monotonic()
    booking = client.create_booking(showtime_id, ["A4"], "ada@example.com")
    assert time.monotonic() - started >= 0.9  # it honoured Retry-After
    assert booking.status == "PENDING"
    attempts = proxy.requests_to("POST", "/v1/bookings")
    assert len(attempts) == 2
    assert attempts[0].idempotency_key == attempts[1].idempotency_key is not None


def test_429_and_an_in_progress_409_are_retried_until_the_call_succeeds(
    client: BoxofficeClient, proxy: FaultyProxy, showtime_id: uuid.UUID
) -> None:
    proxy.inject(Answer(429, retry_after="0"), Answer(409, retry_after="0"))
    assert client.seat_map(showtime_id).showtime_id == showtime_id
    assert len(proxy.requests_to("GET", f"/v1/showtimes/{showtime_id}")) == 3


def test_a_retry_after_beyond_the_cap_is_raised_not_waited(
    api: LiveApi, proxy: FaultyProxy, showtime_id: uuid.UUID
) -> None:
    proxy.inject(Answer(503, retry_after="3600"))
    with BoxofficeClient(proxy.url, api.api_key) as client:
        started = time.monotonic()
        with pytest.raises(ServiceUnavailableError) as raised:
            client.seat_map(showtime_id)
    assert raised.value.retry_after == 3600
    assert time.monotonic() - started < 30


def test_gives_up_with_a_transport_error_after_the_last_attempt(api: LiveApi) -> None:
    attempts: list[httpx.Request] = []
    nothing_listens = f"http://127.0.0.1:{free_port()}"
    http = httpx.Client(
        base_url=nothing_listens, timeout=2, event_hooks={"request": [attempts.append]}
    )
    with (
        BoxofficeClient(nothing_listens, api.api_key, retry=FAST, http=http) as client,
        pytest.raises(TransportError),
    ):
        client.create_booking(uuid.uuid4(), ["A2"], "ada@example.com")
    assert len(attempts) == FAST.max_attempts
    assert len({r.headers["idempotency-key"] for r in attempts}) == 1


def test_a_wrong_method_is_a_405_problem_allowing_every_documented_method(api: LiveApi) -> None:
    document = json.loads((ROOT / "docs" / "openapi.json").read_text())
    for template in document["paths"]:
        path = template.replace("{booking_id}", str(uuid.uuid4())).replace(
            "{showtime_id}", str(uuid.uuid4())
        )
        if "{" in path:
            continue
        # With a key: without one, a /v1/ path answers 401 before routing says anything.
        auth = {"Authorization": f"Bearer {api.api_key}"}
        response = httpx.request("PATCH", api.base_url + path, headers=auth, timeout=10)
        assert response.status_code == 405, path
        assert response.headers["content-type"] == "application/problem+json"
        documented = {m.upper() for m in document["paths"][template]}
        allowed = {m.strip() for m in response.headers["allow"].split(",")}
        assert documented <= allowed <= documented | {"HEAD"}, path
