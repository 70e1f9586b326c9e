"""Property-based tests over the request schemas: no input gives a 5xx.

Bodies are drawn both as arbitrary JSON and as near-valid requests with one field gone
wrong, and sent to the real app over real PostgreSQL and Redis. `make fuzz` runs more
examples (HYPOTHESIS_PROFILE=fuzz).
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.conftest import make_catalog
from tests.support.catalog import showtime_body

settings.register_profile(
    "default",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz",
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
weird_text = st.text(max_size=30) | st.sampled_from(["", " ", "\x00", "A" * 400, "é", "1e309"])
seat_labels = st.from_regex(r"[A-Z]{1,3}[0-9]{1,3}", fullmatch=True) | weird_text
phones = st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True) | weird_text | st.none()
emails = st.emails() | weird_text
amounts = (
    st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.booleans()
)


@pytest.fixture(scope="module")
def catalog(client: TestClient) -> dict[str, Any]:
    return make_catalog(client, rows=2, seats=10)


def assert_not_5xx(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["type"].startswith("https://")
        assert problem["detail"]


POST_PATHS = [
    "/v1/venues",
    "/v1/showtimes",
    "/v1/bookings",
    "/v1/venues/{venue}/screens",
    "/v1/bookings/{booking}/payments",
    "/v1/bookings/{booking}/cancel",
    "/v1/payments/webhooks/razorpay",
    "/v1/payments/webhooks/test",
]


@given(path=st.sampled_from(POST_PATHS), body=json_values)
def test_any_json_body_on_any_post_is_not_a_5xx(
    client: TestClient, catalog: dict[str, Any], path: str, body: Any
) -> None:
    path = path.format(venue=catalog["venue"]["id"], booking=uuid.uuid4())
    assert_not_5xx(client.post(path, json=body))


@given(name=st.text(max_size=20), title=st.text(max_size=20), row=st.text(max_size=4))
def test_any_names_are_answered_without_a_5xx(
    client: TestClient, catalog: dict[str, Any], name: str, title: str, row: str
) -> None:
    assert_not_5xx(client.post("/v1/venues", json={"name": name}))
    screen = {"name": name, "rows": [{"label": row, "seats": 2}]}
    assert_not_5xx(client.post(f"/v1/venues/{catalog['venue']['id']}/screens", json=screen))
    starts = datetime(2033, 1, 1, 10, tzinfo=UTC)
    showtime = showtime_body(catalog["screen"]["id"], title, starts, {"standard": 1})
    assert_not_5xx(client.post("/v1/showtimes", json=showtime))


def test_nul_characters_are_a_422_not_a_database_error(client: TestClient) -> None:
    response = client.post("/v1/venues", json={"name": "Nul\x00Hall"})
    assert response.status_code == 422
    assert "control characters" in response.json()["detail"]
    path = "/v1/bookings/%00/cancel"
    keyed = client.post(path, headers={"Idempotency-Key": str(uuid.uuid4())})
    assert_not_5xx(keyed)


@given(raw=st.binary(max_size=200), content_type=st.sampled_from(["application/json", "text/x"]))
def test_any_bytes_are_not_a_5xx(client: TestClient, raw: bytes, content_type: str) -> None:
    for path in ("/v1/bookings", "/v1/payments/webhooks/razorpay"):
        assert_not_5xx(client.post(path, content=raw, headers={"content-type": content_type}))


@given(
    seats=st.lists(seat_labels, max_size=12),
    email=emails,
    phone=phones,
    showtime=st.sampled_from(["real", "random", "garbage"]),
)
def test_hold_requests_are_answered_without_a_5xx(
    client: TestClient,
    catalog: dict[str, Any],
    seats: list[str],
    email: str,
    phone: str | None,
    showtime: str,
) -> None:
    showtime_id = {
        "real": catalog["showtime"]["id"],
        "random": str(uuid.uuid4()),
        "garbage": "not-a-uuid",
    }[showtime]
    body = {"showtime_id": showtime_id, "seats": seats, "customer": {"email": email}}
    if phone is not None:
        body["customer"]["phone"] = phone
    response = client.post("/v1/bookings", json=body)
    assert_not_5xx(response)
    if response.status_code == 201:
        client.post(f"/v1/bookings/{response.json()['id']}/cancel")


@given(prices=st.dictionaries(st.sampled_from(["standard", "premium", "X", ""]), amounts))
def test_showtime_prices_are_answered_without_a_5xx(
    client: TestClient, catalog: dict[str, Any], prices: dict[str, Any]
) -> None:
    starts = datetime(2031, 1, 1, 10, tzinfo=UTC)
    body = showtime_body(catalog["screen"]["id"], "Fuzz", starts, prices)
    assert_not_5xx(client.post("/v1/showtimes", json=body))


@given(
    limit=st.integers(min_value=-5, max_value=500) | st.text(max_size=5),
    cursor=st.text(max_size=60),
    email=weird_text,
    date=weird_text,
)
def test_list_query_strings_are_answered_without_a_5xx(
    client: TestClient, limit: Any, cursor: str, email: str, date: str
) -> None:
    params = {"limit": limit, "cursor": cursor}
    assert_not_5xx(client.get("/v1/venues", params=params))
    assert_not_5xx(client.get("/v1/bookings", params={**params, "customer_email": email}))
    assert_not_5xx(client.get("/v1/showtimes", params={**params, "date": date}))


@pytest.mark.parametrize(
    ("customer", "seats", "message"),
    [
        ({"email": "a@example.com"}, ["c7"], "e.g. 'C7'"),
        ({"email": "a@example.com", "phone": "98000 00001"}, ["B1"], "E.164"),
        ({"email": "not-an-email"}, ["B1"], "not a valid email address"),
    ],
)
def test_field_errors_say_what_is_expected(
    client: TestClient,
    catalog: dict[str, Any],
    customer: dict[str, str],
    seats: list[str],
    message: str,
) -> None:
    body = {"showtime_id": catalog["showtime"]["id"], "seats": seats, "customer": customer}
    response = client.post("/v1/bookings", json=body)
    assert response.status_code == 422
    assert message in response.json()["detail"]


@pytest.mark.parametrize("amount", [12.5, "2500", True, -1])
def test_amounts_must_be_integer_minor_units(
    client: TestClient, catalog: dict[str, Any], amount: Any
) -> None:
    starts = datetime(2032, 1, 1, 10, tzinfo=UTC)
    body = showtime_body(catalog["screen"]["id"], "Money", starts, {"standard": amount})
    response = client.post("/v1/showtimes", json=body)
    assert response.status_code == 422
    assert "minor unit" in response.json()["detail"]
