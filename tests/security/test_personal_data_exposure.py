"""No span attribute and no log line of a full booking flow holds the customer's email or phone."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import httpx

from tests.security.conftest import Hostile
from tests.support.catalog import post_showtime

EMAIL = "josé.ñandú@exämple.com"
PHONE = "+919800000123"


def forms(value: str) -> list[str]:
    """The ways a value can appear in text: as is, lowercased, percent-encoded, JSON-escaped."""
    return [value, value.lower(), quote(value), quote(value, safe=""), json.dumps(value)[1:-1]]


def catalog(http: httpx.Client) -> str:
    _, _, showtime = post_showtime(
        http,
        venue="Zoë Ñandú Hall",
        screen="Ünïcode 1",
        film="Amélie",
        seats=6,
        price=25000,
        starts_in=timedelta(days=3),
    )
    return str(showtime)


def full_booking_flow(http: httpx.Client) -> list[int]:
    showtime = catalog(http)
    customer = {"email": EMAIL, "phone": PHONE}
    statuses: list[int] = []

    def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Idempotency-Key": str(uuid.uuid4())} if method == "POST" else {}
        response = http.request(method, path, headers=headers, **kwargs)
        statuses.append(response.status_code)
        return response

    held = call(
        "POST",
        "/v1/bookings",
        json={"showtime_id": showtime, "seats": ["A1", "A2"], "customer": customer},
    ).json()
    booking = held["id"]
    # The same seats again: a 409 naming them.
    call(
        "POST",
        "/v1/bookings",
        json={"showtime_id": showtime, "seats": ["A2"], "customer": customer},
    )
    # Invalid input around the personal data: a 422 that must not echo it into logs or spans.
    call(
        "POST",
        "/v1/bookings",
        json={
            "showtime_id": showtime,
            "seats": ["A3"],
            "customer": {"email": EMAIL, "phone": PHONE + "99999999"},
        },
    )
    call("GET", "/v1/bookings", params={"customer_email": EMAIL})
    call("GET", f"/v1/bookings/{booking}")
    call(
        "POST",
        f"/v1/bookings/{booking}/payments",
        json={"provider": "test", "outcome": "succeeded"},
    )
    call("GET", f"/v1/bookings/{booking}/payments")
    call("POST", f"/v1/bookings/{booking}/cancel")
    return statuses


def test_a_full_booking_flow_leaves_no_email_or_phone_in_spans_or_logs(traced: Hostile) -> None:
    hostile = traced
    with httpx.Client(
        base_url=hostile.api.base_url,
        headers={"Authorization": f"Bearer {hostile.api.api_key}"},
        timeout=30,
    ) as http:
        statuses = full_booking_flow(http)
    assert statuses == [201, 409, 422, 200, 200, 201, 200, 200], statuses

    spans = hostile.spans()
    assert any("/v1/bookings" in json.dumps(s) for s in spans), "the flow's spans were exported"
    # The listing's query string is in no span, redacted where the URL is kept.
    urls = [
        str(value)
        for span in spans
        for key, value in (span.get("attributes") or {}).items()
        if key in ("http.url", "url.full", "http.target")
    ]
    assert urls
    assert not [url for url in urls if "?" in url and not url.endswith("?<redacted>")]
    lines = hostile.log_lines()
    assert lines
    for value in (EMAIL, PHONE):
        for form in forms(value):
            leaking_spans = [s["name"] for s in spans if form in json.dumps(s, ensure_ascii=False)]
            leaking_spans += [s["name"] for s in spans if form in json.dumps(s)]
            assert not leaking_spans, (form, leaking_spans)
            assert not [line for line in lines if form in line], form
