"""Benchmark sizes (full and quick) and the environment every service of a run gets."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

# Services run with their shipped defaults, except what a scenario needs to change. Put here any
# setting a later feature adds that would throttle a load generator (rate limits, quotas): the
# bench's own key must be limited by the system's capacity, not by a policy.
SERVICE_ENV: dict[str, str] = {
    "BOXOFFICE_ENV": "production",
    "BOXOFFICE_LOG_LEVEL": "INFO",
    # The load generator is one client: a per-key rate limit would measure the limiter.
    "BOXOFFICE_RATE_LIMIT_REQUESTS": "0",
    # ...and a limit on one client's active holds would refuse its holds after the first 50.
    "BOXOFFICE_MAX_ACTIVE_HOLDS_PER_CLIENT": "0",
    # Scenario 4 confirms bookings with the local test provider (off by default in production).
    "BOXOFFICE_TEST_PAYMENTS_ENABLED": "true",
    # ...which production refuses with the public default webhook secret.
    "BOXOFFICE_TEST_WEBHOOK_SECRET": secrets.token_hex(16),
    # The bench's SMTP server is local and has no provider account to protect: the notifier's
    # shared send budget (20/s by default) would cap scenario 4 at 20 emails/s and measure
    # the limiter. It stays on (one Redis round trip per email), just out of the way.
    "BOXOFFICE_SMTP_RATE_PER_SECOND": "10000",
}

CONNECTIONS = 64  # scenario 1: closed-loop wrk connections
HOT_ATTEMPTS = 1000  # scenario 2
HOT_SEATS = 10


@dataclass(frozen=True)
class Sizes:
    """How long and how big each scenario is."""

    name: str
    wrk_seconds: int
    wrk_warmup_seconds: int
    expiry_holds: int
    expiry_spread_seconds: int
    expiry_ttl_seconds: int
    steady_rate: int
    steady_seconds: int
    burst_confirmations: int
    noop_tasks: int
    seat_map_reads: int


FULL = Sizes(
    name="full",
    wrk_seconds=30,
    wrk_warmup_seconds=3,
    expiry_holds=5000,
    expiry_spread_seconds=60,
    expiry_ttl_seconds=2,
    steady_rate=100,
    steady_seconds=30,
    burst_confirmations=2000,
    noop_tasks=2000,
    seat_map_reads=2000,
)

QUICK = Sizes(
    name="quick",
    wrk_seconds=6,
    wrk_warmup_seconds=1,
    expiry_holds=400,
    expiry_spread_seconds=6,
    expiry_ttl_seconds=2,
    steady_rate=100,
    steady_seconds=6,
    burst_confirmations=300,
    noop_tasks=300,
    seat_map_reads=400,
)
