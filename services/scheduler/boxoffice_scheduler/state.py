"""Last-run times in Redis, claimed atomically with a fencing token.

A slot is claimed *before* its message is sent: a crash between the two loses that one
slot (the next slot or the next leader covers it) but can never send it twice. The claim
is refused to a holder whose fencing token is older than one already seen, so a paused
ex-leader that wakes up after a fail-over cannot send anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis

# One hash tag, so all keys live in one Redis Cluster slot and the script may touch them all.
KEY_PREFIX = "boxoffice:{scheduler}"

CLAIMED = 1
ALREADY_SENT = 0
NOT_LEADER = -1
FENCED_OFF = -2

_CLAIM = """
-- KEYS: last-run hash, fencing key, leader lock (or the hash again when no lock is checked)
-- ARGV: job, slot ms, fencing token, expected lock value ("" = do not check the lock)
if ARGV[4] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[4] then return -1 end
local fence = tonumber(redis.call('GET', KEYS[2]) or '0')
local token = tonumber(ARGV[3])
if token < fence then return -2 end
if token > fence then redis.call('SET', KEYS[2], ARGV[3]) end
local last = redis.call('HGET', KEYS[1], ARGV[1])
if last and tonumber(ARGV[2]) <= tonumber(last) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


@dataclass(frozen=True)
class LockGuard:
    """In Redis leader election, the claim also checks that the lock is still ours."""

    key: str
    value: str


class ScheduleState:
    """Per-job last-sent slot (milliseconds since the epoch) shared by all replicas."""

    def __init__(self, redis: Redis, fence: str = "redis", prefix: str = KEY_PREFIX) -> None:
        self.redis = redis
        self.last_run_key = f"{prefix}:last-run"
        self.fence_key = f"{prefix}:fence:{fence}"
        self._claim = redis.register_script(_CLAIM)

    def last_runs(self) -> dict[str, int]:
        raw: dict[bytes, bytes] = self.redis.hgetall(self.last_run_key)  # type: ignore[assignment]
        return {k.decode(): int(v) for k, v in raw.items()}

    def claim(self, job: str, slot_ms: int, token: int, guard: LockGuard | None = None) -> int:
        """CLAIMED if this holder may send `slot_ms` of `job`; else why not."""
        keys = [self.last_run_key, self.fence_key, guard.key if guard else self.last_run_key]
        args = [job, slot_ms, token, guard.value if guard else ""]
        return int(self._claim(keys=keys, args=args))  # type: ignore[arg-type]
