"""Celery queue lengths in Redis (`celery_queue_length` is exported by `cluster.ClusterCollector`).

This module is the one place that knows kombu's priority-queue key layout (`priority_keys`);
`boxoffice_messaging.queues` (operators' lengths and purges) and the relay's redelivery use it.

Kombu's Redis transport keeps a queue's prioritised messages in sub-lists named
`<queue>\\x06\\x16<priority>`; a queue's length is the sum over all of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from redis import Redis

# kombu.transport.redis: Channel.sep and PRIORITY_STEPS (priority 0 is the bare queue name).
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)


def priority_keys(queue: str, steps: Iterable[int] = PRIORITY_STEPS) -> list[str]:
    """The Redis keys holding `queue`'s messages, one per priority step."""
    return [f"{queue}{PRIORITY_SEPARATOR}{step}" if step else queue for step in steps]


def queue_lengths(client: Redis, queues: Sequence[str]) -> dict[str, int]:
    """Messages waiting in each queue, over all its priority sub-lists, in one round trip."""
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        for key in priority_keys(queue):
            pipe.llen(key)
    counts = iter(pipe.execute())
    return {queue: sum(int(next(counts)) for _ in PRIORITY_STEPS) for queue in queues}
