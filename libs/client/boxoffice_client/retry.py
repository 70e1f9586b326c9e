"""When a request is retried, and after how long.

A retry must never do something twice. GETs are safe to repeat; every POST this client sends
carries an `Idempotency-Key` (the same one on each attempt), so the server replays its first
answer instead of acting again. With that, these are retried:

- network errors (connection refused or reset, timeouts, a response cut off);
- 409 with `Retry-After`: the same key is still being answered (a 409 without it is a real
  conflict, such as seats already taken, and is final);
- 429 and 503, after `Retry-After` when the server sends it, else exponential backoff with
  full jitter.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts a call gets and how long to wait between them."""

    max_attempts: int = 4
    backoff_base: float = 0.25
    backoff_max: float = 8.0
    # A server asking to wait longer than this is not waited for: the error is raised.
    max_retry_after: float = 30.0
    statuses: frozenset[int] = field(default_factory=lambda: frozenset({409, 429, 503}))

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**attempt)]."""
        return random.uniform(0, min(self.backoff_max, self.backoff_base * 2**attempt))

    def delay_after_error(self, request: httpx.Request, attempt: int) -> float | None:
        """Seconds before retrying after a network error on attempt `attempt` (0-based)."""
        if attempt + 1 >= self.max_attempts:
            return None
        repeatable = request.method in SAFE_METHODS or "idempotency-key" in request.headers
        return self.backoff(attempt) if repeatable else None

    def delay_after_response(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds before retrying after this response, or None to stop here."""
        if attempt + 1 >= self.max_attempts or response.status_code not in self.statuses:
            return None
        request = response.request
        if request.method not in SAFE_METHODS and "idempotency-key" not in request.headers:
            return None
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if response.status_code == 409 and retry_after is None:
            return None
        if retry_after is None:
            return self.backoff(attempt)
        return retry_after if retry_after <= self.max_retry_after else None


NO_RETRIES = RetryPolicy(max_attempts=1)
