"""Cluster-wide Celery gauges, exported once per release by the scheduler leader.

celery-exporter watches the whole cluster from one process; these are the gauges of its that
no single worker can give:

- `celery_queue_length{queue_name}`: messages waiting, over kombu's priority sub-lists;
- `celery_worker_up{hostname}`: 1 for a worker whose heartbeat is fresh, 0 for one that stopped
  heartbeating without saying goodbye (killed, OOM, node lost), until it is purged; a worker
  that shut down cleanly removed itself and is simply gone (a rollout is not an outage);
- `celery_active_worker_count{queue_name}` and `celery_active_process_count{queue_name}`: live
  workers consuming each queue and their pool processes.

Workers write their heartbeat (hostname, queues, processes) into one Redis hash every few
seconds (`WorkerHeartbeat`); the leader reads it at scrape time. The timestamps are Redis's
clock, so node clock skew does not matter, and the state survives a leader fail-over.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass

from opentelemetry.instrumentation.utils import suppress_instrumentation
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from redis import Redis

from boxoffice_telemetry.queues import queue_lengths

log = logging.getLogger(__name__)

WORKERS_KEY = "boxoffice:celery:workers"
HEARTBEAT_SECONDS = 5.0
# No heartbeat for this long: the worker reads 0. After PURGE_SECONDS it is forgotten, as
# celery-exporter purges offline workers (its default: 10 minutes).
TIMEOUT_SECONDS = 30.0
PURGE_SECONDS = 600.0


@dataclass(frozen=True)
class WorkerBeat:
    """One worker's last heartbeat."""

    hostname: str
    queues: tuple[str, ...]
    processes: int
    at: float


def redis_now(client: Redis) -> float:
    """Redis's clock, in seconds: the one clock every worker and the leader share."""
    seconds, micros = client.time()
    return float(seconds) + float(micros) / 1e6


def record_heartbeat(client: Redis, hostname: str, queues: Sequence[str], processes: int) -> None:
    """Store `hostname`'s heartbeat, stamped with Redis's time."""
    beat = WorkerBeat(hostname, tuple(queues), processes, redis_now(client))
    client.hset(WORKERS_KEY, hostname, json.dumps(asdict(beat)))


def forget_worker(client: Redis, hostname: str) -> None:
    """A worker's goodbye (clean shutdown), or the leader purging a long-dead worker."""
    client.hdel(WORKERS_KEY, hostname)


def read_heartbeats(client: Redis) -> list[WorkerBeat]:
    """Every worker's last heartbeat; entries that do not decode are skipped."""
    beats = []
    for raw in client.hgetall(WORKERS_KEY).values():
        try:
            data = json.loads(raw)
            beats.append(
                WorkerBeat(
                    str(data["hostname"]),
                    tuple(str(q) for q in data["queues"]),
                    int(data["processes"]),
                    float(data["at"]),
                )
            )
        except (ValueError, KeyError, TypeError):
            log.warning("skipping an undecodable worker heartbeat")
    return beats


class WorkerHeartbeat:
    """A worker's heartbeat thread: writes every `interval` seconds until stopped."""

    def __init__(
        self,
        client: Redis,
        hostname: str,
        queues: Sequence[str],
        processes: int,
        interval: float = HEARTBEAT_SECONDS,
    ) -> None:
        self.client = client
        self.hostname = hostname
        self.queues = list(queues)
        self.processes = processes
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-heartbeat", daemon=True)

    def _beat(self) -> None:
        try:
            with suppress_instrumentation():
                record_heartbeat(self.client, self.hostname, self.queues, self.processes)
        except Exception as exc:  # Redis away: the next beat tries again
            log.warning("worker heartbeat failed: %s", type(exc).__name__)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._beat()

    def start(self) -> WorkerHeartbeat:
        self._beat()
        self._thread.start()
        return self

    def stop(self, goodbye: bool = True) -> None:
        """Stop beating; with `goodbye`, remove the worker (a clean shutdown is not a death)."""
        self._stop.set()
        if goodbye:
            try:
                with suppress_instrumentation():
                    forget_worker(self.client, self.hostname)
            except Exception as exc:
                log.warning("could not remove the worker heartbeat: %s", type(exc).__name__)


class ClusterCollector(Collector):
    """The cluster gauges, yielded only while `is_leader()`: one copy per release."""

    def __init__(
        self,
        client: Redis,
        queues: Sequence[str],
        is_leader: Callable[[], bool],
        timeout: float = TIMEOUT_SECONDS,
        purge_after: float = PURGE_SECONDS,
    ) -> None:
        # The caller builds the client with short socket timeouts so a scrape never hangs.
        self._client = client
        self._queues = list(queues)
        self._is_leader = is_leader
        self._timeout = timeout
        self._purge_after = purge_after

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "celery_queue_length",
                "The number of message in broker queue.",
                labels=["queue_name"],
            ),
            GaugeMetricFamily(
                "celery_worker_up",
                "Indicates if a worker has recently sent a heartbeat.",
                labels=["hostname"],
            ),
            GaugeMetricFamily(
                "celery_active_worker_count",
                "The number of active workers in broker queue.",
                labels=["queue_name"],
            ),
            GaugeMetricFamily(
                "celery_active_process_count",
                "The number of active processes in broker queue.",
                labels=["queue_name"],
            ),
        )

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        if not self._is_leader():
            return
        lengths_family, up_family, workers_family, processes_family = self._families()
        try:
            # A scrape every few seconds is not worth a trace of its own.
            with suppress_instrumentation():
                lengths = queue_lengths(self._client, self._queues)
                beats = read_heartbeats(self._client)
                now = redis_now(self._client)
                for beat in beats:
                    if now - beat.at > self._purge_after:
                        forget_worker(self._client, beat.hostname)
        except Exception as exc:
            # A scrape must not fail because Redis is down: the series go missing instead, and
            # the Redis and absent-data alerts say why.
            log.warning("cannot read the cluster's queues and workers: %s", type(exc).__name__)
            return
        workers: dict[str, int] = defaultdict(int)
        processes: dict[str, int] = defaultdict(int)
        for beat in beats:
            age = now - beat.at
            if age > self._purge_after:
                continue
            alive = age <= self._timeout
            up_family.add_metric([beat.hostname], 1.0 if alive else 0.0)
            if alive:
                for queue in beat.queues:
                    workers[queue] += 1
                    processes[queue] += beat.processes
        for queue in sorted(set(self._queues) | set(workers)):
            if queue in lengths:
                lengths_family.add_metric([queue], float(lengths[queue]))
            workers_family.add_metric([queue], float(workers[queue]))
            processes_family.add_metric([queue], float(processes[queue]))
        yield from (lengths_family, up_family, workers_family, processes_family)
