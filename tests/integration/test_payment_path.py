"""A payment answered without FastAPI's routing (`boxoffice_booking.payment_path`).

Real PostgreSQL and Redis, the app in-process, requests from several clients. What must hold:
the answer is the one FastAPI gives for the same payment, byte for byte, with the same headers;
a failure is the app's problem+json; its answer is stored and replayed under its
Idempotency-Key; the route is named in metrics; and whatever the middleware does not take (a
body, a booking id or a key FastAPI would refuse) is answered by FastAPI as before.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import fastapi.routing
import pytest
from boxoffice_booking import payment_path
from boxoffice_booking.auth import create_api_key
from boxoffice_db.engine import session_scope
from fastapi.dependencies.utils import solve_dependencies
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from tests.integration.conftest import make_catalog

ROUTE = "/v1/bookings/{booking_id}/payments"


@pytest.fixture
def routed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every request FastAPI routes (it solves the route's dependencies for each)."""
    seen: list[tuple[str, str]] = []
    solve = solve_dependencies  # what fastapi.routing calls, looked up at call time

    async def counting(*args: Any, **kwargs: Any) -> Any:
        request = kwargs["request"]
        seen.append((request.method, request.url.path))
        return await solve(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    return seen


@contextlib.contextmanager
def fastapi_only() -> Iterator[None]:
    """The middleware takes no payment meanwhile: FastAPI answers every one."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(payment_path, "payment_request", lambda scope: None)
        yield


def hold(client: TestClient, showtime_id: str, seats: list[str], email: str, **headers: str) -> str:
    response = client.post(
        "/v1/bookings",
        json={"showtime_id": showtime_id, "seats": seats, "customer": {"email": email}},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def pay(client: TestClient, booking_id: str, outcome: str, **headers: str) -> Any:
    return client.post(
        f"/v1/bookings/{booking_id}/payments",
        json={"provider": "test", "outcome": outcome},
        headers=headers,
    )


def answered_by_route(status: str) -> float:
    labels = {"handler": ROUTE, "method": "POST", "status": status}
    return REGISTRY.get_sample_value("http_requests_total", labels) or 0.0


def test_a_payment_is_answered_as_fastapi_answers_it(
    client: TestClient, routed: list[tuple[str, str]]
) -> None:
    showtime_id = make_catalog(client)["showtime"]["id"]
    run = uuid.uuid4().hex[:8]
    created_before = answered_by_route("2xx")
    # An order left in progress (`pending`) is answered again to a retry without a key, with a
    # 200: the same payment, so the two answers can be compared byte for byte.
    first = hold(client, showtime_id, ["A1", "A2"], "Ðörte.Ñúñez@exämple.com")
    here = pay(client, first, "pending", **{"Idempotency-Key": f"{run}-1"})
    assert here.status_code == 201, here.text
    assert ("POST", f"/v1/bookings/{first}/payments") not in routed
    with fastapi_only():
        again = pay(client, first, "pending")
    assert ("POST", f"/v1/bookings/{first}/payments") in routed
    assert again.status_code == 200, again.text
    assert again.content == here.content
    for header in ("content-type", "location", "content-length"):
        assert again.headers[header] == here.headers[header], header
    assert here.headers["location"] == f"/v1/bookings/{first}/payments"
    assert "request-id" in here.headers
    # And the other way round: FastAPI's 201, then this middleware's 200.
    second = hold(client, showtime_id, ["B1"], "李小龍@例子.中国")
    with fastapi_only():
        there = pay(client, second, "pending")
    routed.clear()
    back = pay(client, second, "pending")
    assert (there.status_code, back.status_code) == (201, 200)
    assert back.content == there.content
    assert back.headers["location"] == there.headers["location"]
    assert routed == []
    # A captured payment confirms the booking; its stored answer is replayed to a retry.
    third = hold(client, showtime_id, ["C1", "C2"], "zoë@exämple.com")
    paid = pay(client, third, "succeeded", **{"Idempotency-Key": f"{run}-3"})
    assert paid.status_code == 201, paid.text
    assert paid.json()["status"] == "succeeded"
    assert paid.json()["booking"]["status"] == "CONFIRMED"
    replay = pay(client, third, "succeeded", **{"Idempotency-Key": f"{run}-3"})
    assert replay.status_code == 201
    assert replay.content == paid.content
    assert replay.headers.get("idempotent-replayed") == "true"
    # A refusal is the app's problem+json, the same from both paths.
    refused = pay(client, third, "succeeded")
    with fastapi_only():
        refused_there = pay(client, third, "succeeded")
    assert refused.status_code == refused_there.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    per_request = ("request_id", "trace_id")
    assert {k: v for k, v in refused.json().items() if k not in per_request} == {
        k: v for k, v in refused_there.json().items() if k not in per_request
    }
    assert list(refused.json()) == list(refused_there.json())
    assert refused.json()["instance"] == f"/v1/bookings/{third}/payments"
    assert answered_by_route("2xx") >= created_before + 5
    assert ("POST", f"/v1/bookings/{third}/payments") in routed  # only the one sent there
    assert routed.count(("POST", f"/v1/bookings/{third}/payments")) == 1


def test_what_the_payment_path_does_not_take_is_answered_by_fastapi(
    client: TestClient, routed: list[tuple[str, str]]
) -> None:
    showtime_id = make_catalog(client)["showtime"]["id"]
    suffix = uuid.uuid4().hex[:6]
    with session_scope() as session:
        reader = create_api_key(session, "reader", ["bookings:read"], client=f"Ōsaka {suffix}")
        other = create_api_key(
            session, "other", ["bookings:read", "bookings:write"], client=f"Ünïcode {suffix}"
        )
    booking = hold(client, showtime_id, ["A3"], "ßeta@exämple.com")
    path = f"/v1/bookings/{booking}/payments"
    routed.clear()
    # A body FastAPI refuses: its 422, and the payment path left it alone.
    bad = client.post(path, json={"provider": "test", "outcome": "maybe"})
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
    assert routed == [("POST", path)]
    # Not JSON by its content type: FastAPI's answer too.
    routed.clear()
    text = client.post(
        path, content=b'{"provider": "test"}', headers={"content-type": "text/plain"}
    )
    assert text.status_code == 422
    assert routed == [("POST", path)]
    # A booking id that is no UUID.
    routed.clear()
    malformed = client.post("/v1/bookings/not-a-uuid/payments", json={"provider": "test"})
    assert malformed.status_code == 422
    assert routed == [("POST", "/v1/bookings/not-a-uuid/payments")]
    # A key without the scope: FastAPI's 403.
    routed.clear()
    forbidden = client.post(
        path, json={"provider": "test"}, headers={"Authorization": f"Bearer {reader}"}
    )
    assert forbidden.status_code == 403
    assert routed == [("POST", path)]
    # Another client's booking is a 404 from the payment path, and nothing was paid.
    routed.clear()
    foreign = client.post(
        path, json={"provider": "test"}, headers={"Authorization": f"Bearer {other}"}
    )
    assert foreign.status_code == 404
    assert foreign.headers["content-type"] == "application/problem+json"
    assert routed == []
    listed = client.get(path)
    assert listed.status_code == 200
    assert listed.json() == []
    # Its owner still pays for it.
    assert pay(client, booking, "succeeded").status_code == 201
