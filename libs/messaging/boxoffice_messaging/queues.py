"""Queue lengths and purging on the Redis broker, for operators and the stats endpoint.

kombu's priority-queue key layout is written once, in `boxoffice_telemetry.queues` (the
lowest library that reads the broker: messaging depends on telemetry, not the reverse).
"""

from __future__ import annotations

from boxoffice_telemetry.queues import PRIORITY_STEPS, priority_keys
from boxoffice_telemetry.queues import queue_lengths as _queue_lengths
from redis import Redis

from boxoffice_messaging.routes import QUEUE_EMAIL, QUEUE_REAPER, QUEUE_SMS

QUEUES = (QUEUE_EMAIL, QUEUE_SMS, QUEUE_REAPER)
# Messages a worker has taken but not yet acknowledged (kombu's Redis transport).
UNACKED_HASH = "unacked"

__all__ = [
    "PRIORITY_STEPS",
    "QUEUES",
    "priority_keys",
    "purge_queue",
    "queue_lengths",
    "unacked_count",
]


def queue_lengths(client: Redis, queues: tuple[str, ...] = QUEUES) -> dict[str, int]:
    """Messages waiting in each queue (the services' three by default), all priorities together."""
    return _queue_lengths(client, queues)


def unacked_count(client: Redis) -> int:
    """Messages taken by workers and not acknowledged yet (running, or waiting for an ETA)."""
    return int(client.hlen(UNACKED_HASH))


def purge_queue(client: Redis, queue: str) -> int:
    """Drop every waiting message of `queue`; returns how many were dropped."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}; known: {', '.join(QUEUES)}")
    pipe = client.pipeline(transaction=True)
    keys = priority_keys(queue)
    for key in keys:
        pipe.llen(key)
    pipe.delete(*keys)
    results = pipe.execute()
    return int(sum(results[: len(keys)]))
