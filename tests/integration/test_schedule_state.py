"""Last-run state in real Redis: restarts and fail-overs neither reset nor repeat a job.

The clock is a parameter of the `Ticker`, so hours and days pass in a moment; Redis, the
claims and the fencing are real.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from boxoffice_messaging.redis_client import redis_client
from boxoffice_scheduler.election import Term
from boxoffice_scheduler.schedule import PeriodicJob
from boxoffice_scheduler.scheduler import Ticker, tick_id
from boxoffice_scheduler.state import ALREADY_SENT, CLAIMED, FENCED_OFF, ScheduleState
from boxoffice_scheduler.timing import Cron, Every, from_ms, to_ms
from redis import Redis

from tests.support.stack import Stack

pytestmark = pytest.mark.integration

HOURLY = PeriodicJob("purge-expired-keys", "reaper.purge_expired_keys", "reaper", Every(3600))
DAILY = PeriodicJob(
    "daily-report", "notifier.send_daily_report", "notifier.email", Cron("5 0 * * *")
)


@pytest.fixture
def redis(stack: Stack) -> Iterator[Redis]:
    client = redis_client(stack.redis_url.rsplit("/", 1)[0] + "/5")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


class Replica:
    """One scheduler process's view: its own Ticker over the shared Redis state."""

    def __init__(self, redis: Redis, token: int, clock: list[datetime]) -> None:
        self.sent: list[tuple[str, datetime, str]] = []
        self.clock = clock
        self.ticker = Ticker(
            [HOURLY, DAILY],
            ScheduleState(redis),
            term=lambda: Term(token, float("inf")),
            guard=lambda: None,
            send=lambda job, slot, task_id, _term: self.sent.append(
                (job.name, from_ms(slot), task_id)
            ),
            idle_interval=1.0,
            now_ms=lambda: to_ms(self.clock[0]),
        )

    def tick_at(self, moment: datetime) -> list[tuple[str, datetime, str]]:
        self.clock[0] = moment
        before = len(self.sent)
        self.ticker.tick()
        return self.sent[before:]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_a_restart_does_not_reset_an_interval_countdown(redis: Redis) -> None:
    clock = [at("2026-03-02T10:00:10")]
    first = Replica(redis, token=1, clock=clock)
    assert [name for name, _, _ in first.tick_at(at("2026-03-02T10:00:10"))] == [HOURLY.name]
    # Restarted ten minutes later: the hourly job is not due again until 11:00.
    restarted = Replica(redis, token=2, clock=clock)
    assert restarted.tick_at(at("2026-03-02T10:10:00")) == []
    assert restarted.tick_at(at("2026-03-02T10:59:59")) == []
    [(name, slot, task_id)] = restarted.tick_at(at("2026-03-02T11:00:00.2"))
    assert (name, slot) == (HOURLY.name, at("2026-03-02T11:00:00"))
    assert task_id == tick_id(HOURLY.name, to_ms(slot))


def test_a_missed_crontab_job_is_sent_once_after_downtime_and_never_again(redis: Redis) -> None:
    clock = [at("2026-03-02T23:00:00")]
    first = Replica(redis, token=1, clock=clock)
    first.tick_at(at("2026-03-02T23:00:00"))  # first sight of the cron job: starts from now
    assert not [s for s in first.sent if s[0] == DAILY.name]
    [(_, slot, _)] = [s for s in first.tick_at(at("2026-03-03T00:05:00.5")) if s[0] == DAILY.name]
    assert slot == at("2026-03-03T00:05:00")
    # Down over the next 00:05: the successor sends that one slot once on start...
    successor = Replica(redis, token=2, clock=clock)
    late = [s for s in successor.tick_at(at("2026-03-04T00:40:00")) if s[0] == DAILY.name]
    assert [slot for _, slot, _ in late] == [at("2026-03-04T00:05:00")]
    # ...and neither a restart nor another replica sends it again.
    for replica in (Replica(redis, token=3, clock=clock), successor):
        assert not [s for s in replica.tick_at(at("2026-03-04T00:41:00")) if s[0] == DAILY.name]
    # Two days missed in a row are still one report, for the latest day.
    again = [s for s in successor.tick_at(at("2026-03-06T09:00:00")) if s[0] == DAILY.name]
    assert [slot for _, slot, _ in again] == [at("2026-03-06T00:05:00")]


def test_a_stale_leader_is_fenced_off_once_a_newer_one_has_claimed(redis: Redis) -> None:
    state = ScheduleState(redis)
    now = to_ms(at("2026-03-02T10:00:00"))
    assert state.claim("sweep", now, token=7) == CLAIMED
    assert state.claim("sweep", now, token=7) == ALREADY_SENT
    assert state.claim("sweep", now + 1000, token=8) == CLAIMED
    # The old leader wakes from a pause: even a new slot is refused to it.
    assert state.claim("sweep", now + 2000, token=7) == FENCED_OFF
    assert state.last_runs()["sweep"] == now + 1000


def test_the_timing_grid_is_the_same_on_every_replica() -> None:
    sweep = Every(1)
    now = to_ms(at("2026-03-02T10:00:00") + timedelta(milliseconds=1750))
    assert sweep.latest_due(now, None) == now - 750
    assert sweep.latest_due(now, now - 750) is None
    assert sweep.next_after(now) == now + 250
    assert Cron("5 0 * * *").next_after_dt(at("2026-03-02T00:05:00")) == at("2026-03-03T00:05:00")
    # Cron's day of week counts from Sunday: 2026-03-02 is a Monday.
    assert Cron("0 9 * * 0").next_after_dt(at("2026-03-02T10:00:00")) == at("2026-03-08T09:00:00")
