"""A Celery Beat `Scheduler` that sends only while leading, each slot at most once.

Why not celery-redbeat: its lock has no fencing token and no Kubernetes Lease, a replica
that lost the lock finds out only at its next check, and it records a run after sending, so
a crash in between sends that run again. Here the leader claims a slot in Redis (with its
fencing token, atomically) before sending it, and stops sending once it cannot renew.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from boxoffice_messaging.redis_client import redis_from_settings
from boxoffice_settings import Settings, get_settings
from celery import Celery
from celery.beat import Scheduler
from prometheus_client import Counter, Gauge
from redis import Redis, RedisError

from boxoffice_scheduler.cluster import current_namespace, in_cluster
from boxoffice_scheduler.election import LeaderElection, LeaderLock, RedisLeaderLock, Term
from boxoffice_scheduler.schedule import PeriodicJob, build_schedule
from boxoffice_scheduler.state import CLAIMED, LockGuard, ScheduleState
from boxoffice_scheduler.timing import Every, from_ms

log = logging.getLogger(__name__)

# Exit status when leadership is lost: the orchestrator restarts the process as a follower.
EXIT_LEADERSHIP_LOST = 3

SENT = Counter("boxoffice_scheduler_jobs_sent_total", "Periodic jobs sent by the leader", ["job"])
LAST_SENT = Gauge(
    "boxoffice_scheduler_last_sent_slot_timestamp_seconds",
    "The due time of the last slot of each job this replica sent",
    ["job"],
)
# Stable namespace for tick ids: the same job and slot give the same Celery task id everywhere.
TICK_NAMESPACE = uuid.UUID("5d3c1d8e-6f0e-4b8a-9d8c-2a4b6c8e0f11")

Send = Callable[[PeriodicJob, int, str, Term], None]


def tick_id(job: str, slot_ms: int) -> str:
    """The Celery task id of one slot of one job, the same on every replica."""
    return str(uuid.uuid5(TICK_NAMESPACE, f"{job}@{slot_ms}"))


class Ticker:
    """The scheduling decision, apart from Celery: which slots to claim and send now."""

    def __init__(
        self,
        jobs: list[PeriodicJob],
        state: ScheduleState,
        term: Callable[[], Term | None],
        guard: Callable[[], LockGuard | None],
        send: Send,
        idle_interval: float,
        now_ms: Callable[[], int] = lambda: round(time.time() * 1000),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.jobs = jobs
        self.state = state
        self.term = term
        self.guard = guard
        self.send = send
        self.idle_interval = idle_interval
        self.now_ms = now_ms
        self.clock = clock

    def tick(self) -> float:
        """Send what is due if we lead; return the seconds until something may be due."""
        now = self.now_ms()
        if self.term() is not None:
            try:
                self._send_due(now)
            except RedisError as exc:  # Redis away: retry next tick; the election decides the rest
                log.warning("could not reach the schedule state in Redis: %s", exc)
        next_due = min((job.timing.next_after(now) for job in self.jobs), default=None)
        wait = self.idle_interval if next_due is None else (next_due - self.now_ms()) / 1000
        return max(0.0, min(wait, self.idle_interval))

    def _send_due(self, now: int) -> None:
        last_runs = self.state.last_runs()
        for job in self.jobs:
            slot = job.timing.latest_due(now, last_runs.get(job.name))
            if slot is None and job.name not in last_runs:
                # A cron job seen for the first time starts counting from now.
                self._claim_and_send(job, now, send=False)
            elif slot is not None:
                self._claim_and_send(job, slot, send=True)

    def _claim_and_send(self, job: PeriodicJob, slot_ms: int, send: bool) -> None:
        term = self.term()
        if term is None:  # the renew deadline passed while we were busy: send nothing more
            return
        outcome = self.state.claim(job.name, slot_ms, term.token, self.guard())
        if outcome != CLAIMED:
            log.warning("slot not claimed", extra={"job": job.name, "outcome": outcome})
            return
        if not send:
            return
        if self.clock() >= term.valid_until:
            log.warning("leadership lapsed between claim and send", extra={"job": job.name})
            return
        try:
            self.send(job, slot_ms, tick_id(job.name, slot_ms), term)
        except Exception:
            # Claimed but not sent: this slot is lost (never doubled); the next one follows.
            log.exception("could not send %s", job.name)
            return
        SENT.labels(job.name).inc()
        LAST_SENT.labels(job.name).set(slot_ms / 1000)


def make_lock(settings: Settings, redis: Redis, identity: str) -> tuple[LeaderLock, str]:
    """A Kubernetes Lease in a cluster (or when asked), else a Redis lock; and which it is."""
    mode = settings.scheduler_leader_election
    if mode == "kubernetes" or (mode == "auto" and in_cluster()):
        # Imported only here: the Kubernetes client takes seconds to import.
        from boxoffice_scheduler.kube_lease import KubernetesLeaseLock, api_client

        namespace = settings.scheduler_lease_namespace or current_namespace()
        log.info("leader election by Lease %s/%s", namespace, settings.scheduler_lease_name)
        return KubernetesLeaseLock(
            api_client(),
            namespace,
            settings.scheduler_lease_name,
            identity,
            settings.scheduler_lease_duration_seconds,
        ), "kubernetes"
    return RedisLeaderLock(redis, identity, settings.scheduler_lease_duration_seconds), "redis"


def default_identity() -> str:
    # Unique per process: a restarted container must not inherit its predecessor's term.
    name = os.environ.get("POD_NAME") or socket.gethostname()
    return f"{name}_{os.getpid()}_{uuid.uuid4().hex[:6]}"


def exit_on_lost() -> None:
    """Leave at once: sending already stopped; the orchestrator restarts us as a follower."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(EXIT_LEADERSHIP_LOST)


class LeaderScheduler(Scheduler):
    """Celery Beat with leader election and slots claimed in Redis (see the module doc)."""

    def __init__(self, app: Celery, *args: Any, **kwargs: Any) -> None:
        self.ticker: Ticker | None = None
        self.election: LeaderElection | None = None
        kwargs.pop("schedule_filename", None)  # no local state file: it lives in Redis
        super().__init__(app, *args, **kwargs)

    def setup_schedule(self) -> None:
        settings = get_settings()
        jobs = build_schedule(settings)
        # A hung Redis call must not outlast a retry period, or renewals would fall behind.
        timeout = settings.scheduler_retry_period_seconds
        # Through the shared client, so a Sentinel REDIS_URL works here as for the broker.
        redis = redis_from_settings(
            settings, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        identity = settings.scheduler_identity or default_identity()
        lock, mode = make_lock(settings, redis, identity)
        self.election = LeaderElection(
            lock,
            settings.scheduler_lease_duration_seconds,
            settings.scheduler_renew_deadline_seconds,
            settings.scheduler_retry_period_seconds,
            on_lost=exit_on_lost,
        ).start()
        self.ticker = Ticker(
            jobs,
            # Fencing tokens of the two kinds of lock are not comparable: one fence each.
            ScheduleState(redis, fence=mode),
            self.election.term,
            lock.guard,
            self._send,
            idle_interval=min(1.0, settings.scheduler_retry_period_seconds),
        )
        for job in jobs:
            log.info("scheduled %s: %s -> %s (%s)", job.name, job.task, job.queue, job.timing)
        log.info("scheduler started", extra={"identity": identity, "election": mode})

    def _send(self, job: PeriodicJob, slot_ms: int, task_id: str, term: Term) -> None:
        scheduled_for = from_ms(slot_ms).isoformat()
        self.app.send_task(
            job.task,
            kwargs=job.kwargs,
            queue=job.queue,
            task_id=task_id,
            expires=job.expires,
            producer=self.producer,
            headers={
                "boxoffice_job": job.name,
                "boxoffice_scheduled_for": scheduled_for,
                "boxoffice_fencing_token": term.token,
            },
        )
        # A sweep a second would flood the log; rarer jobs are worth a line each.
        frequent = isinstance(job.timing, Every) and job.timing.seconds < 60
        log.log(
            logging.DEBUG if frequent else logging.INFO,
            "sent %s",
            job.name,
            extra={"scheduled_for": scheduled_for, "task_id": task_id},
        )

    def tick(self, *args: Any, **kwargs: Any) -> float:
        assert self.ticker is not None
        return self.ticker.tick()

    def sync(self) -> None:
        """Nothing to write: each claim was already stored in Redis."""

    def close(self) -> None:
        if self.election is not None:
            self.election.stop(release=True)
        super().close()

    @property
    def info(self) -> str:
        return "leader-elected, last runs in Redis"
