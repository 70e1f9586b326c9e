"""Three real scheduler processes on real Redis: one leads, kill -9 it, another takes over."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from boxoffice_devstack.servers import RedisServer
from boxoffice_messaging.redis_client import redis_client
from boxoffice_messaging.routes import QUEUE_REAPER, TASK_EXPIRE_DUE_HOLDS
from redis import Redis

from tests.support.beat import SentTick, sent_ticks
from tests.support.kube_api import KubeApiServer
from tests.support.processes import ServiceProcess, wait_until
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

LEASE = 3.0
RENEW_DEADLINE = 2.0
RETRY = 0.5
SWEEP = 0.5
SWEEP_MS = round(SWEEP * 1000)
LEADER_KEY = "boxoffice:{scheduler}:leader"
# Slack for a loaded 2-core machine: generous, since tests never assert wall-clock tightly.
SLACK = 4.0


@dataclass
class Cluster:
    redis: Redis
    schedulers: dict[str, ServiceProcess]

    def leader(self) -> str | None:
        value: bytes | None = self.redis.get(LEADER_KEY)  # type: ignore[assignment]
        return value.decode().rsplit("|", 1)[0] if value else None

    def ticks(self) -> list[SentTick]:
        return sent_ticks(self.redis, QUEUE_REAPER)


def scheduler_env(stack: Stack, redis_url: str, identity: str) -> dict[str, str]:
    return stack.env(
        REDIS_URL=redis_url,
        BOXOFFICE_SCHEDULER_IDENTITY=identity,
        BOXOFFICE_SCHEDULER_LEADER_ELECTION="redis",
        BOXOFFICE_SCHEDULER_LEASE_DURATION_SECONDS=str(LEASE),
        BOXOFFICE_SCHEDULER_RENEW_DEADLINE_SECONDS=str(RENEW_DEADLINE),
        BOXOFFICE_SCHEDULER_RETRY_PERIOD_SECONDS=str(RETRY),
        BOXOFFICE_REAPER_SWEEP_INTERVAL_SECONDS=str(SWEEP),
        BOXOFFICE_SCHEDULE_SHOWTIME_REMINDERS="off",
        BOXOFFICE_SCHEDULE_DAILY_REPORT="off",
        BOXOFFICE_SCHEDULE_PURGE_RETENTION="off",
        BOXOFFICE_SCHEDULE_PURGE_EXPIRED_KEYS="off",
        BOXOFFICE_SCHEDULE_RECONCILE_REFUNDS="off",
    )


@pytest.fixture
def private_redis(stack: Stack) -> Iterator[tuple[Redis, str]]:
    """A Redis database of its own, emptied, so the queue holds only this test's ticks."""
    url = stack.redis_url.rsplit("/", 1)[0] + "/3"
    redis = redis_client(url)
    redis.flushdb()
    yield redis, url
    redis.flushdb()
    redis.close()


def start_schedulers(stack: Stack, redis_url: str, names: list[str]) -> dict[str, ServiceProcess]:
    logs = stack.var / "scheduler-logs"
    return {
        name: ServiceProcess(
            name, "boxoffice_scheduler.main", scheduler_env(stack, redis_url, name), logs
        ).start()
        for name in names
    }


def assert_no_tick_twice(ticks: list[SentTick]) -> None:
    slots = [t.scheduled_for_ms for t in ticks]
    assert len(slots) == len(set(slots)), "a slot was sent twice"
    assert len({t.task_id for t in ticks}) == len(ticks)


def gaps(ticks: list[SentTick]) -> list[tuple[int, SentTick, SentTick]]:
    """(gap in ms, before, after) for every pair of consecutive slots more than one apart."""
    ordered = sorted(ticks, key=lambda t: t.scheduled_for_ms)
    return [
        (b.scheduled_for_ms - a.scheduled_for_ms, a, b)
        for a, b in itertools.pairwise(ordered)
        if b.scheduled_for_ms - a.scheduled_for_ms != SWEEP_MS
    ]


def test_killing_the_leader_hands_over_within_the_lease_and_no_tick_is_sent_twice(
    stack: Stack, private_redis: tuple[Redis, str]
) -> None:
    redis, url = private_redis
    cluster = Cluster(redis, start_schedulers(stack, url, ["s0", "s1", "s2"]))
    try:
        wait_until(lambda: len(cluster.ticks()) >= 4, 60, "the first ticks")
        first = cluster.leader()
        assert first in cluster.schedulers
        time.sleep(1.5)

        cluster.schedulers[first].kill()  # kill -9: no release, the lease has to lapse
        killed_at_ms = round(time.time() * 1000)
        wait_until(
            lambda: cluster.leader() not in (None, first), LEASE + RETRY + SLACK * 2, "a new leader"
        )
        second = cluster.leader()
        assert second is not None
        wait_until(
            lambda: any(t.scheduled_for_ms > killed_at_ms for t in cluster.ticks()),
            LEASE + SLACK * 2,
            "ticks from the new leader",
        )
        time.sleep(2)

        # A graceful stop releases the lease: the last replica takes over without waiting.
        cluster.schedulers[second].stop()
        stopped_at_ms = round(time.time() * 1000)
        wait_until(
            lambda: any(t.scheduled_for_ms > stopped_at_ms + SWEEP_MS for t in cluster.ticks()),
            LEASE + SLACK * 2,
            "ticks from the third leader",
        )
        time.sleep(1.5)
        for process in cluster.schedulers.values():
            process.stop()
    finally:
        for process in cluster.schedulers.values():
            process.kill()

    ticks = cluster.ticks()
    assert {t.task for t in ticks} == {TASK_EXPIRE_DUE_HOLDS}
    assert_no_tick_twice(ticks)
    tokens = [t.fencing_token for t in sorted(ticks, key=lambda t: t.scheduled_for_ms)]
    assert tokens == sorted(tokens), "an older leader sent after a newer one"
    assert len(set(tokens)) == 3, f"expected three leaders in turn, saw tokens {set(tokens)}"

    # Missed slots only where leadership changed hands, and no longer than the lease allows.
    holes = gaps(ticks)
    assert all(gap > 0 for gap, _, _ in holes)
    for gap, before, after in holes:
        assert before.fencing_token != after.fencing_token, f"a {gap} ms hole within one term"
    kill_hole = max(holes, key=lambda h: h[0])[0] if holes else 0
    assert kill_hole <= (LEASE + RETRY + SWEEP + SLACK) * 1000, f"fail-over took {kill_hole} ms"


def test_a_leader_whose_lock_is_taken_stops_sending_and_exits(
    stack: Stack, private_redis: tuple[Redis, str]
) -> None:
    redis, url = private_redis
    [scheduler] = start_schedulers(stack, url, ["lonely"]).values()
    try:
        wait_until(lambda: len(sent_ticks(redis, QUEUE_REAPER)) >= 2, 60, "the first ticks")
        # As if the lease had lapsed (a long pause) and another replica had taken it.
        redis.set(LEADER_KEY, "intruder|999999", px=60_000)
        taken_at_ms = round(time.time() * 1000)
        assert scheduler.process is not None
        wait_until(
            lambda: scheduler.process is not None and scheduler.process.poll() is not None,
            RETRY + SLACK * 2,
            "the ex-leader to exit",
        )
        assert scheduler.process.returncode == 3, scheduler.log()[-2000:]
    finally:
        scheduler.kill()
    late = [t for t in sent_ticks(redis, QUEUE_REAPER) if t.scheduled_for_ms > taken_at_ms]
    assert late == [], "the ex-leader sent after its lock was taken"
    assert "lost the scheduler leadership" in scheduler.log()


def test_scheduler_processes_elect_through_a_kubernetes_lease(
    stack: Stack, private_redis: tuple[Redis, str], tmp_path: Path
) -> None:
    redis, url = private_redis
    api = KubeApiServer().start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(api.kubeconfig())
    logs = stack.var / "scheduler-logs"
    processes = {
        name: ServiceProcess(
            name,
            "boxoffice_scheduler.main",
            {
                **scheduler_env(stack, url, name),
                "BOXOFFICE_SCHEDULER_LEADER_ELECTION": "kubernetes",
                "BOXOFFICE_SCHEDULER_LEASE_NAMESPACE": "boxoffice",
                "KUBECONFIG": str(kubeconfig),
            },
            logs,
        ).start()
        for name in ("k0", "k1")
    }

    def lease_holder() -> str | None:
        lease = api.store.lease("boxoffice", "boxoffice-scheduler")
        return lease["spec"].get("holderIdentity") if lease else None

    try:
        wait_until(lambda: len(sent_ticks(redis, QUEUE_REAPER)) >= 3, 60, "the first ticks")
        first = lease_holder()
        assert first in processes
        processes[first].kill()
        killed_at_ms = round(time.time() * 1000)
        wait_until(
            lambda: any(t.scheduled_for_ms > killed_at_ms for t in sent_ticks(redis, QUEUE_REAPER)),
            LEASE + 1 + RETRY + SLACK * 2,  # a Lease counts whole seconds
            "ticks from the new leader",
        )
        assert lease_holder() not in (None, first)
        time.sleep(1)
    finally:
        for process in processes.values():
            process.stop()
        api.stop()
    ticks = sent_ticks(redis, QUEUE_REAPER)
    assert_no_tick_twice(ticks)
    assert len({t.fencing_token for t in ticks}) == 2
    lease = api.store.lease("boxoffice", "boxoffice-scheduler")
    assert lease is not None
    assert lease["spec"]["leaseTransitions"] >= 1


def test_a_leader_cut_off_from_redis_exits_once_its_renew_deadline_passes(
    stack: Stack, tmp_path: Path
) -> None:
    redis_server = RedisServer(tmp_path / "redis").start()
    [scheduler] = start_schedulers(stack, redis_server.url, ["cut-off"]).values()
    try:
        with redis_client(redis_server.url) as redis:
            wait_until(lambda: len(sent_ticks(redis, QUEUE_REAPER)) >= 2, 60, "the first ticks")
        redis_server.stop()
        cut_at = time.monotonic()
        wait_until(
            lambda: scheduler.process is not None and scheduler.process.poll() is not None,
            RENEW_DEADLINE + SLACK * 2,
            "the leader to exit",
        )
        # It kept retrying until its renew deadline (sending stopped there, see `Term`).
        assert time.monotonic() - cut_at >= RENEW_DEADLINE - RETRY * 2
        assert scheduler.process is not None
        assert scheduler.process.returncode == 3, scheduler.log()[-2000:]
    finally:
        scheduler.kill()
        redis_server.stop()
