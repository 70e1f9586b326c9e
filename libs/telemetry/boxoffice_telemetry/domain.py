"""Domain gauges that no single component's code owns (see docs/observability.md).

`SCHEDULER_LEADER` is set by whoever holds (or loses) the scheduler's leadership.
`DeadLetterCollector` asks for the dead-letter counts at scrape time (the caller passes the
messaging repository's query), so the figure is right whichever process or replica
dead-lettered a message. Telemetry writes no SQL of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping

from opentelemetry.instrumentation.utils import suppress_instrumentation
from prometheus_client import Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

SCHEDULER_LEADER = Gauge(
    "boxoffice_scheduler_leader",
    "1 while this scheduler replica is the leader and sends the periodic tasks",
    multiprocess_mode="max",
)


class DeadLetterCollector(Collector):
    """`boxoffice_dead_letters{service}`: dead letters not yet replayed, per service."""

    def __init__(self, count: Callable[[], Mapping[str, int]]) -> None:
        # `count` reads the unreplayed dead letters by service (boxoffice_messaging.dead_letters).
        self._count = count

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "boxoffice_dead_letters", "Dead-lettered messages not replayed", labels=["service"]
        )

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        try:
            with suppress_instrumentation():
                counts = self._count()
        except Exception as exc:
            # No table yet (older schema) or the database is down: no series, not a failed scrape.
            log.debug("cannot count dead letters: %s", type(exc).__name__)
            return
        for service, count in counts.items():
            family.add_metric([str(service)], float(count))
        yield family
