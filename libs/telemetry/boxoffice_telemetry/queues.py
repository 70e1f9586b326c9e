"""`celery_queue_length{queue_name}`: Redis list lengths read at scrape time, as celery-exporter.

Kombu's Redis transport keeps a queue's prioritised messages in sub-lists named
`<queue>\\x06\\x16<priority>`; a queue's length is the sum over all of them. Several processes
export the same queues, so dashboards take `max by (queue_name)`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence

from opentelemetry.instrumentation.utils import suppress_instrumentation
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from redis import Redis

log = logging.getLogger(__name__)

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


class QueueLengthCollector(Collector):
    """Reports `celery_queue_length` for the given queues on every scrape."""

    def __init__(self, client: Redis, queues: Sequence[str]) -> None:
        # The caller builds the client (boxoffice_messaging.redis_client handles Sentinel URLs);
        # give it short socket timeouts so a scrape never hangs on Redis.
        self._client = client
        self._queues = list(queues)

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "celery_queue_length", "Messages waiting in a queue", labels=["queue_name"]
        )

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "celery_queue_length", "Messages waiting in a queue", labels=["queue_name"]
        )
        try:
            # A scrape every few seconds is not worth a trace of its own.
            with suppress_instrumentation():
                lengths = queue_lengths(self._client, self._queues)
        except Exception as exc:
            # A scrape must not fail because Redis is down: the series goes missing instead,
            # and the "Redis unreachable" / absent() alerts say why.
            log.warning("cannot read queue lengths: %s", type(exc).__name__)
            return
        for queue, length in lengths.items():
            family.add_metric([queue], length)
        yield family
