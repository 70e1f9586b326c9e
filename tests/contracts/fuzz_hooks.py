"""Schemathesis hooks for tests/contracts/test_api_fuzz.py (loaded via SCHEMATHESIS_HOOKS)."""

from __future__ import annotations

import uuid
from typing import Any

import schemathesis


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """Give each request its own Idempotency-Key.

    Generated keys repeat ("0", "A", ...) across requests with different bodies, which the API
    rightly answers with 422 idempotency-key-reused. Suffixing a UUID keeps the characters
    the generator chose (a key with ones the API refuses still has them) while making each
    request a new operation; replays of one key are tested by the booking API's own tests.
    """
    headers = case.headers
    if headers and isinstance(headers.get("Idempotency-Key"), str):
        headers["Idempotency-Key"] = f"{headers['Idempotency-Key'][:200]}-{uuid.uuid4().hex}"
