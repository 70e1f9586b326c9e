"""Leader election: one scheduler replica sends, the others wait to take over.

The loop follows client-go's leaderelection: try to acquire or renew every `retry_period`;
a leader that has not renewed for `renew_deadline` (< `lease_duration`) stops leading, so it
stops sending before any other replica could see its lease as expired.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from boxoffice_telemetry.domain import SCHEDULER_LEADER
from prometheus_client import Counter
from redis import Redis

from boxoffice_scheduler.state import KEY_PREFIX, LockGuard

log = logging.getLogger(__name__)

# The leader gauge is shared with the dashboards and alerts (boxoffice_scheduler_leader).
IS_LEADER = SCHEDULER_LEADER
# Set while this process leads: the cluster gauges (queue lengths, workers) are served then only.
LEADING = threading.Event()
LEADERSHIP_CHANGES = Counter(
    "boxoffice_scheduler_leadership_changes_total",
    "Times this replica became or stopped being the leader",
    ["change"],
)


class LeadershipTaken(Exception):
    """Another holder owns the lease: whoever thought it led must stop at once."""


class LeaderLock(Protocol):
    """A lease on leadership (a Redis key or a Kubernetes Lease)."""

    identity: str

    def acquire_or_renew(self) -> int | None:
        """Take or extend the lease; the fencing token if held, None if someone else holds it."""
        ...

    def release(self) -> None:
        """Give the lease up now, if still ours, so another replica takes over at once."""
        ...

    def guard(self) -> LockGuard | None:
        """What a claim in Redis can check to prove the lease is still ours, if anything."""
        ...


_ACQUIRE = """
-- KEYS: lock, token counter. ARGV: identity, lease ms.
local current = redis.call('GET', KEYS[1])
if current then
  local holder, token = string.match(current, '^(.*)|(%d+)$')
  if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(token)
  end
  return nil
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
return token
"""

_RELEASE = """
local current = redis.call('GET', KEYS[1])
if current and string.match(current, '^(.*)|%d+$') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLeaderLock:
    """A Redis key with a TTL as the lease; INCR hands each new holder a larger fencing token."""

    def __init__(self, redis: Redis, identity: str, lease_duration: float) -> None:
        self.redis = redis
        self.identity = identity
        self.lease_ms = max(1, round(lease_duration * 1000))
        self.key = f"{KEY_PREFIX}:leader"
        self.token_key = f"{KEY_PREFIX}:leader-token"
        self._acquire = redis.register_script(_ACQUIRE)
        self._release = redis.register_script(_RELEASE)
        self._token: int | None = None

    def acquire_or_renew(self) -> int | None:
        result = self._acquire(keys=[self.key, self.token_key], args=[self.identity, self.lease_ms])
        self._token = None if result is None else int(result)
        return self._token

    def release(self) -> None:
        self._release(keys=[self.key], args=[self.identity])

    def guard(self) -> LockGuard | None:
        if self._token is None:
            return None
        return LockGuard(self.key, f"{self.identity}|{self._token}")


@dataclass(frozen=True)
class Term:
    """A stretch of leadership: its fencing token and when this replica must stop sending."""

    token: int
    valid_until: float  # time.monotonic()


class LeaderElection:
    """Runs the acquire/renew loop on a thread; `term()` says whether we may send now."""

    def __init__(
        self,
        lock: LeaderLock,
        lease_duration: float,
        renew_deadline: float,
        retry_period: float,
        on_lost: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not retry_period < renew_deadline < lease_duration:
            raise ValueError("need retry_period < renew_deadline < lease_duration")
        self.lock = lock
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.on_lost = on_lost
        self.clock = clock
        self._mutex = threading.Lock()
        self._token: int | None = None
        self._renewed_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def term(self) -> Term | None:
        """The current term if we lead and renewed within the renew deadline, else None."""
        with self._mutex:
            if self._token is None:
                return None
            valid_until = self._renewed_at + self.renew_deadline
            if self.clock() >= valid_until:
                return None
            return Term(self._token, valid_until)

    def step(self) -> None:
        """One acquire-or-renew attempt; calls `on_lost` when leadership is gone."""
        attempt_started = self.clock()
        try:
            token = self.lock.acquire_or_renew()
        except LeadershipTaken:
            token = None
            error: Exception | None = None
        except Exception as exc:  # an unreachable lock service: keep trying until the deadline
            error = exc
            token = None
        else:
            error = None
        with self._mutex:
            leading = self._token is not None
            if token is not None:
                # Count the lease from before the request: the server may have seen it any time
                # after, so this errs towards stopping early.
                self._renewed_at = attempt_started
                self._token = token
                if not leading:
                    IS_LEADER.set(1)
                    LEADING.set()
                    LEADERSHIP_CHANGES.labels("acquired").inc()
                    log.info(
                        "became the scheduler leader",
                        extra={"identity": self.lock.identity, "fencing_token": token},
                    )
                return
            if not leading:
                if error is not None:
                    log.warning("leader election attempt failed: %s", error)
                return
            lapsed = self.clock() - self._renewed_at >= self.renew_deadline
            if error is not None and not lapsed:
                log.warning("could not renew the leader lease, will retry: %s", error)
                return
            self._token = None
        IS_LEADER.set(0)
        LEADING.clear()
        LEADERSHIP_CHANGES.labels("lost").inc()
        log.error(
            "lost the scheduler leadership; stopping",
            extra={"identity": self.lock.identity, "reason": str(error or "taken by another")},
        )
        self.on_lost()

    def run(self) -> None:
        while not self._stop.is_set():
            started = self.clock()
            self.step()
            self._stop.wait(max(0.0, self.retry_period - (self.clock() - started)))

    def start(self) -> LeaderElection:
        self._thread = threading.Thread(target=self.run, name="leader-election", daemon=True)
        self._thread.start()
        return self

    def stop(self, release: bool = True) -> None:
        """Stop the loop and, if we lead, hand the lease over at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.retry_period + 5)
        with self._mutex:
            leading = self._token is not None
            self._token = None
        if leading and release:
            try:
                self.lock.release()
                log.info("released the scheduler leadership")
            except Exception as exc:
                log.warning("could not release the leader lease: %s", exc)
        IS_LEADER.set(0)
        LEADING.clear()
