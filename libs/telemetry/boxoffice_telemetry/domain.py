"""Domain gauges that no single component's code owns (see docs/observability.md).

`SCHEDULER_LEADER` is set by whoever holds (or loses) the scheduler's leadership.
`DeadLetterCollector` reads the dead-letter table at scrape time, so the figure is right
whichever process or replica dead-lettered a message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from opentelemetry.instrumentation.utils import suppress_instrumentation
from prometheus_client import Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)

SCHEDULER_LEADER = Gauge(
    "boxoffice_scheduler_leader",
    "1 while this scheduler replica is the leader and sends the periodic tasks",
    multiprocess_mode="max",
)

DEAD_LETTERS_SQL = text(
    "SELECT service, count(*) FROM dead_letters WHERE replayed_at IS NULL GROUP BY service"
)


class DeadLetterCollector(Collector):
    """`boxoffice_dead_letters{service}`: dead letters not yet replayed, per service."""

    def __init__(self, engine: Callable[[], Engine]) -> None:
        self._engine = engine

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "boxoffice_dead_letters", "Dead-lettered messages not replayed", labels=["service"]
        )

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        try:
            with suppress_instrumentation(), self._engine().connect() as connection:
                rows = connection.execute(DEAD_LETTERS_SQL).all()
        except SQLAlchemyError as exc:
            # No table yet (older schema) or the database is down: no series, not a failed scrape.
            log.debug("cannot count dead letters: %s", type(exc).__name__)
            return
        for service, count in rows:
            family.add_metric([str(service)], float(count))
        yield family
