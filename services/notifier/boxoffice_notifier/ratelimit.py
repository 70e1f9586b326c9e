"""Messages per second per provider, shared by every worker through Redis (GCRA)."""

from __future__ import annotations

import time

import redis

from boxoffice_notifier.errors import TransientDeliveryError

# Generic cell rate algorithm: the key holds the theoretical arrival time (TAT) in
# microseconds of Redis's own clock, so workers on different hosts agree.
# Returns 0 when a message may go now, else how many microseconds to wait; -1, taking nothing,
# when KEYS[2] is given and exists (the message's "sent" mark: there is nothing to send).
GCRA = """
if KEYS[2] and redis.call('EXISTS', KEYS[2]) == 1 then
  return -1
end
local key = KEYS[1]
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', key) or now)
if tat < now then tat = now end
local allow_at = tat - interval * (burst - 1)
if now < allow_at then
  return allow_at - now
end
local new_tat = tat + interval
-- %d: Lua would otherwise write the number as %.14g and lose microseconds.
redis.call('SET', key, string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return 0
"""


class RateLimited(TransientDeliveryError):
    """The provider's budget is spent for longer than a worker should block."""


class RateLimiter:
    """`acquire()` blocks (briefly) until the provider's shared budget allows one message."""

    def __init__(self, client: redis.Redis, provider: str, per_second: float, burst: int = 1):
        self.client = client
        self.key = f"boxoffice:ratelimit:{provider}"
        self.interval_us = int(1_000_000 / per_second)
        self.burst = max(1, burst)
        self.script = client.register_script(GCRA)

    def acquire(self, max_wait: float = 10.0, *, unless: str | None = None) -> bool:
        """Take one slot, sleeping while the budget refills; `RateLimited` past `max_wait`.

        With `unless`, a key on the same Redis (a message's "sent" mark, see
        `boxoffice_messaging.inbox.SentMarks`): if it exists, take nothing and return False.
        The check rides in the budget's own script, so asking "sent already?" and "may it go
        now?" is one round trip instead of two.
        """
        deadline = time.monotonic() + max_wait
        keys = [self.key] if unless is None else [self.key, unless]
        while True:
            try:
                wait_us = int(self.script(keys=keys, args=[self.interval_us, self.burst]))
            except redis.RedisError as exc:
                # No budget to check means no sending: the limit protects a provider account.
                raise TransientDeliveryError(f"rate limiter unavailable: {exc}") from exc
            if wait_us < 0:
                return False
            if wait_us == 0:
                return True
            wait = wait_us / 1_000_000
            if time.monotonic() + wait > deadline:
                raise RateLimited("provider rate limit", retry_after=wait)
            time.sleep(wait)
