"""Examples for the OpenAPI document, keyed by schema name or problem slug.

An entry for a schema that does not exist (yet) is skipped; tests check every example here
validates against its schema, so the examples cannot drift from the API.
"""

from __future__ import annotations

from typing import Any

SHOWTIME_ID = "0b7e3f7a-8a55-4c2e-9f0e-2d8c1c6e5a41"
BOOKING_ID = "6f1d2c3b-4a59-4e6f-8a7b-9c0d1e2f3a4b"
PAYMENT_ID = "2a3b4c5d-6e7f-4809-9a1b-2c3d4e5f6a7b"
CUSTOMER = {"email": "ada@example.com", "phone": "+919800000001"}
SEATS = [
    {"label": "C3", "category": "standard", "price_minor": 25000},
    {"label": "C4", "category": "standard", "price_minor": 25000},
]

BOOKING_PENDING: dict[str, Any] = {
    "id": BOOKING_ID,
    "reference": "BX7K2Q9D",
    "status": "PENDING",
    "showtime_id": SHOWTIME_ID,
    "seats": SEATS,
    "total_minor": 50000,
    "currency": "INR",
    "customer": CUSTOMER,
    "expires_at": "2026-11-21T10:10:00Z",
    "created_at": "2026-11-21T10:00:00Z",
    "confirmed_at": None,
    "expired_at": None,
    "cancelled_at": None,
}
BOOKING_CONFIRMED: dict[str, Any] = {
    **BOOKING_PENDING,
    "status": "CONFIRMED",
    "confirmed_at": "2026-11-21T10:02:13Z",
}

# Request bodies: named examples shown in /docs for each operation's body.
REQUEST_EXAMPLES: dict[str, dict[str, Any]] = {
    "BookingCreate": {
        "two-seats": {
            "summary": "Hold two seats",
            "value": {"showtime_id": SHOWTIME_ID, "seats": ["C3", "C4"], "customer": CUSTOMER},
        },
        "email-only": {
            "summary": "Hold one seat, no phone number",
            "value": {
                "showtime_id": SHOWTIME_ID,
                "seats": ["A2"],
                "customer": {"email": "grace@example.com"},
            },
        },
    },
    "PaymentCreate": {
        "succeeds": {
            "summary": "Pay with the local test provider",
            "value": {"provider": "test", "outcome": "succeeded"},
        },
        "fails": {
            "summary": "A declined payment: the booking stays PENDING",
            "value": {"provider": "test", "outcome": "failed"},
        },
    },
}

# Schema-level `examples` (JSON Schema 2020-12), mostly for response bodies.
SCHEMA_EXAMPLES: dict[str, list[Any]] = {
    "BookingPublic": [BOOKING_PENDING],
    "PaymentPublic": [
        {
            "id": PAYMENT_ID,
            "booking_id": BOOKING_ID,
            "provider": "test",
            "status": "succeeded",
            "amount_minor": 50000,
            "currency": "INR",
            "provider_reference": None,
            "refunded_minor": 0,
            "created_at": "2026-11-21T10:02:13Z",
            "booking": BOOKING_CONFIRMED,
        }
    ],
    "SeatMapPublic": [
        {
            "showtime_id": SHOWTIME_ID,
            "film_title": "The Seventh Seal",
            "starts_at": "2026-11-22T14:30:00Z",
            "currency": "INR",
            "seats": [
                {
                    "label": "A1",
                    "row": "A",
                    "number": 1,
                    "category": "standard",
                    "status": "blocked",
                    "price_minor": None,
                },
                {
                    "label": "A2",
                    "row": "A",
                    "number": 2,
                    "category": "standard",
                    "status": "available",
                    "price_minor": 25000,
                },
                {
                    "label": "A3",
                    "row": "A",
                    "number": 3,
                    "category": "standard",
                    "status": "held",
                    "price_minor": 25000,
                },
            ],
        }
    ],
    "Health": [{"status": "ok", "checks": {"database": "ok", "redis": "ok"}}],
}

# Problem extension members shown in each problem type's example.
PROBLEM_EXTENSION_EXAMPLES: dict[str, dict[str, Any]] = {
    "seats-unavailable": {"seats": ["C3"]},
    "active-holds-limit": {"limit": 50},
    "invalid-seats": {"seats": ["Z99"]},
    "forbidden": {"required_scope": "bookings:write"},
    "booking-state-conflict": {"status_now": "EXPIRED"},
    "hold-expired": {"payment_id": PAYMENT_ID},
    "validation-error": {
        "errors": [
            {
                "loc": ["body", "customer", "email"],
                "msg": "value is not a valid email address",
                "type": "value_error",
            }
        ]
    },
    "malformed-json": {
        "errors": [{"loc": ["body", 12], "msg": "JSON decode error", "type": "json_invalid"}]
    },
}
