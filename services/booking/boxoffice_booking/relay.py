"""`boxoffice-relay`: publish outbox rows to Celery and mark them sent.

Run as many replicas as you like: they share the backlog through SKIP LOCKED and keep each
booking's events in order. When Redis or PostgreSQL is down the relay waits with
exponential backoff and jitter and tries again; unsent rows simply stay unsent. It also
re-sends deliveries that Redis lost after publishing (see boxoffice_messaging.redelivery).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import timedelta
from types import FrameType

from boxoffice_db.engine import get_engine, session_scope
from boxoffice_messaging.celery_app import create_celery_app
from boxoffice_messaging.dead_letters import waiting_dead_letters
from boxoffice_messaging.heartbeat import Heartbeat
from boxoffice_messaging.outbox import outbox_backlog, publish_pending
from boxoffice_messaging.redelivery import redeliver_lost
from boxoffice_messaging.redis_client import redis_from_settings
from boxoffice_messaging.retry import RetryPolicy
from boxoffice_settings import Settings, get_settings
from boxoffice_telemetry.domain import DeadLetterCollector
from boxoffice_telemetry.heap import freeze_startup_heap
from boxoffice_telemetry.logs import configure_logging
from boxoffice_telemetry.wiring import setup_producer
from prometheus_client import Gauge

log = logging.getLogger(__name__)

BACKLOG = Gauge("boxoffice_outbox_backlog", "Outbox events not yet published")
OLDEST_AGE = Gauge(
    "boxoffice_outbox_oldest_unsent_age_seconds", "Age of the oldest unpublished outbox event"
)
RELAY_UP = Gauge("boxoffice_outbox_relay_healthy", "1 while the relay can publish, 0 in backoff")

# The gauges' queries count rows: once a second is plenty.
BACKLOG_INTERVAL_SECONDS = 1.0


def refresh_backlog_gauges() -> None:
    with session_scope() as session:
        backlog = outbox_backlog(session)
    BACKLOG.set(backlog.unsent)
    OLDEST_AGE.set(backlog.oldest_age_seconds)


def run_relay(stop: threading.Event, settings: Settings | None = None) -> None:
    """Drain the outbox until `stop` is set; errors back off and retry, nothing is dropped."""
    settings = settings or get_settings()
    app = create_celery_app("boxoffice-relay", settings)
    # Fail a publish quickly when Redis is away, and let the loop's backoff do the waiting.
    app.conf.broker_transport_options = {
        **app.conf.broker_transport_options,
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
    }
    app.conf.task_publish_retry_policy = {
        "max_retries": 2,
        "interval_start": 0.1,
        "interval_step": 0.2,
        "interval_max": 0.5,
    }
    backoff = RetryPolicy(
        max_retries=0, base_seconds=0.2, cap_seconds=settings.relay_backoff_max_seconds
    )
    redis = redis_from_settings(settings, socket_timeout=5, socket_connect_timeout=2)
    redeliver_after = timedelta(seconds=settings.relay_redeliver_after_seconds)
    failures = 0
    next_gauges = 0.0
    next_redelivery = time.monotonic() + settings.relay_redeliver_check_seconds
    # The liveness probe checks this file: a relay whose loop hangs stops touching it.
    heartbeat = (
        Heartbeat(settings.worker_liveness_file, settings.worker_liveness_interval_seconds)
        if settings.worker_liveness_file
        else None
    )
    while not stop.is_set():
        if heartbeat is not None:
            heartbeat.beat()
        try:
            if time.monotonic() >= next_gauges:
                refresh_backlog_gauges()
                next_gauges = time.monotonic() + BACKLOG_INTERVAL_SECONDS
            if time.monotonic() >= next_redelivery:
                with session_scope() as session:
                    redeliver_lost(session, app, redis, redeliver_after)
                next_redelivery = time.monotonic() + settings.relay_redeliver_check_seconds
            with session_scope() as session:
                examined = publish_pending(session, app, settings.relay_batch_size)
        except Exception as exc:
            delay = backoff.delay(failures)
            failures += 1
            RELAY_UP.set(0)
            log.warning(
                "outbox relay cannot publish (attempt %d), retrying in %.1fs: %s: %s",
                failures,
                delay,
                type(exc).__name__,
                exc,
            )
            stop.wait(delay)
            continue
        if failures:
            log.info("outbox relay recovered after %d failed attempts", failures)
        failures = 0
        RELAY_UP.set(1)
        if examined < settings.relay_batch_size:
            stop.wait(settings.relay_poll_interval_seconds)


def main() -> None:
    settings = get_settings()
    configure_logging("booking-relay", settings.log_level)
    # /metrics, Celery publish metrics and traces; `boxoffice_dead_letters{service}` comes
    # from the collector, the outbox gauges from run_relay.
    setup_producer(
        service="booking-relay",
        metrics_port=settings.metrics_port,
        engine=get_engine,
        collectors=[DeadLetterCollector(waiting_dead_letters)],
    )
    stop = threading.Event()

    def on_signal(signum: int, _: FrameType | None) -> None:
        log.info("relay stopping on signal %s", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    freeze_startup_heap()
    log.info("outbox relay started")
    started = time.monotonic()
    run_relay(stop)
    log.info("outbox relay stopped after %.0fs", time.monotonic() - started)


if __name__ == "__main__":
    main()
