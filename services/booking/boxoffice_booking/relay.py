"""`boxoffice-relay`: publish outbox rows to Celery and mark them sent."""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType

from boxoffice_db.engine import get_engine, session_scope
from boxoffice_messaging.celery_app import create_celery_app
from boxoffice_messaging.heartbeat import Heartbeat
from boxoffice_messaging.outbox import publish_pending
from boxoffice_settings import get_settings
from boxoffice_telemetry.domain import DeadLetterCollector
from boxoffice_telemetry.logs import configure_logging
from boxoffice_telemetry.wiring import setup_producer

log = logging.getLogger(__name__)


def run_relay(stop: threading.Event) -> None:
    """Drain the outbox until `stop` is set; errors back off and retry, nothing is dropped."""
    settings = get_settings()
    app = create_celery_app("boxoffice-relay", settings)
    backoff = 0.0
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
            with session_scope() as session:
                published = publish_pending(session, app, settings.relay_batch_size)
            backoff = 0.0
        except Exception:
            backoff = min(max(backoff * 2, 0.1), 5.0)
            log.exception("outbox relay failed; retrying in %.1fs", backoff)
            stop.wait(backoff)
            continue
        if published < settings.relay_batch_size:
            stop.wait(settings.relay_poll_interval_seconds)


def main() -> None:
    settings = get_settings()
    configure_logging("booking-relay", settings.log_level)
    setup_producer(
        create_celery_app("boxoffice-relay", settings),
        service="booking-relay",
        metrics_port=settings.metrics_port,
        redis_url=settings.redis_url,
        engine=get_engine,
        collectors=[DeadLetterCollector(get_engine)],
    )
    stop = threading.Event()

    def on_signal(signum: int, _: FrameType | None) -> None:
        log.info("relay stopping on signal %s", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("outbox relay started")
    started = time.monotonic()
    run_relay(stop)
    log.info("outbox relay stopped after %.0fs", time.monotonic() - started)


if __name__ == "__main__":
    main()
