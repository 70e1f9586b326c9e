"""Schemathesis hooks for tests/contracts/test_api_fuzz.py (loaded via SCHEMATHESIS_HOOKS)."""

from __future__ import annotations

import uuid
from typing import Any

import schemathesis


@schemathesis.hook
def map_headers(context: Any, headers: dict[str, Any] | None) -> dict[str, Any] | None:
    """Give each generated request its own Idempotency-Key.

    Generated keys repeat ("0", "A", ...) across requests with different bodies, which the API
    rightly answers with 422 idempotency-key-reused. Suffixing a UUID keeps the characters
    the generator chose (a key with ones the API refuses still has them) while making each
    request a new operation; replays of one key are tested by the booking API's own tests.
    """
    if headers and isinstance(headers.get("Idempotency-Key"), str):
        key = headers["Idempotency-Key"]
        headers = {**headers, "Idempotency-Key": f"{key[:200]}-{uuid.uuid4().hex}"}
    return headers
