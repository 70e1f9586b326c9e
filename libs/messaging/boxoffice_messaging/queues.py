"""Queue lengths and purging on the Redis broker, for operators and the stats endpoint."""

from __future__ import annotations

from redis import Redis

from boxoffice_messaging.routes import QUEUE_EMAIL, QUEUE_REAPER, QUEUE_SMS

QUEUES = (QUEUE_EMAIL, QUEUE_SMS, QUEUE_REAPER)
# kombu's Redis transport keeps priorities 3, 6 and 9 in lists named queue + SEP + priority.
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)
# Messages a worker has taken but not yet acknowledged (kombu's Redis transport).
UNACKED_HASH = "unacked"


def queue_keys(queue: str) -> list[str]:
    return [queue if step == 0 else f"{queue}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS]


def queue_lengths(client: Redis, queues: tuple[str, ...] = QUEUES) -> dict[str, int]:
    """Messages waiting in each queue, all priorities together."""
    pipe = client.pipeline()
    for queue in queues:
        for key in queue_keys(queue):
            pipe.llen(key)
    counts = pipe.execute()
    steps = len(PRIORITY_STEPS)
    return {queue: sum(counts[i * steps : (i + 1) * steps]) for i, queue in enumerate(queues)}


def unacked_count(client: Redis) -> int:
    """Messages taken by workers and not acknowledged yet (running, or waiting for an ETA)."""
    return int(client.hlen(UNACKED_HASH))


def purge_queue(client: Redis, queue: str) -> int:
    """Drop every waiting message of `queue`; returns how many were dropped."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}; known: {', '.join(QUEUES)}")
    pipe = client.pipeline(transaction=True)
    keys = queue_keys(queue)
    for key in keys:
        pipe.llen(key)
    pipe.delete(*keys)
    results = pipe.execute()
    return int(sum(results[: len(keys)]))
