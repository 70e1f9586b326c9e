"""The log mask and the span redaction catch any address, and every query string."""

from __future__ import annotations

import pytest
from boxoffice_telemetry.logs import mask_personal_data
from boxoffice_telemetry.redaction import redact_attributes, redact_url


@pytest.mark.parametrize(
    "text",
    [
        "mail to josé@exämple.com now",
        "用户@例子.广告",
        "zoë.ñandú+tickets@exämple.co.uk",
        "customer_email=jos%C3%A9%40ex%C3%A4mple.com&status=PENDING",
        '{"email": "ada@example.com"}',
    ],
)
def test_the_log_mask_hides_any_address(text: str) -> None:
    masked = mask_personal_data(text)
    assert "<email>" in masked
    assert "@" not in masked
    assert "%40" not in masked


def test_the_log_mask_leaves_plain_text_and_ids_alone() -> None:
    text = "booking 8cb2fa17-9234-4fb1-8b85-71e611dd7d79 held at 2026-12-04T09:00:00Z"
    assert mask_personal_data(text) == text


def test_urls_in_spans_lose_their_query_string_and_other_strings_are_masked() -> None:
    attributes = {
        "http.url": "http://api/v1/bookings?customer_email=jos%C3%A9%40ex%C3%A4mple.com",
        "http.target": "/v1/bookings?customer_email=zoë@exämple.com",
        "url.query": "customer_email=zoë@exämple.com",
        "exception.message": "no booking for +919800000123 / zoë@exämple.com",
        "http.status_code": 200,
    }
    assert redact_attributes(attributes) == {
        "http.url": "http://api/v1/bookings?<redacted>",
        "http.target": "/v1/bookings?<redacted>",
        "exception.message": "no booking for <phone> / <email>",
        "http.status_code": 200,
    }
    assert redact_url("/v1/venues") == "/v1/venues"
