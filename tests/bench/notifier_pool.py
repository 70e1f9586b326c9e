"""Benchmark: email throughput of one notifier worker by thread-pool size (`make bench-notifier`).

Each message goes to an SMTP server that takes SMTP_LATENCY seconds to accept it, like a
remote relay; the worker renders, rate-limits (set high here), records the delivery in
PostgreSQL and sends. Prints messages per second for each pool size.
"""

from __future__ import annotations

import os
import time
import uuid

from tests.support.processes import ServiceProcess, wait_until
from tests.support.smtp import SmtpServer

MESSAGES = int(os.environ.get("BENCH_MESSAGES", "200"))
SMTP_LATENCY = float(os.environ.get("BENCH_SMTP_LATENCY", "0.1"))
POOL_SIZES = [int(n) for n in os.environ.get("BENCH_POOL_SIZES", "1,4,8,16,32").split(",")]


def main() -> None:
    # The same private PostgreSQL and Redis as the tests.
    from tests.support.stack import start_stack

    stack = start_stack()
    os.environ.update(stack.settings_env())
    from boxoffice_db.engine import session_scope
    from boxoffice_db.migrate import upgrade_to_head
    from boxoffice_db.models import OutboxEvent
    from boxoffice_messaging.celery_app import create_celery_app
    from boxoffice_messaging.outbox import publish_event
    from boxoffice_settings import get_settings
    from sqlalchemy import select

    from tests.support.catalog import make_booking, make_showtime

    upgrade_to_head(stack.database_url)
    booking_id = make_booking(make_showtime(), ["B2"])
    with session_scope() as session:
        event = session.scalars(
            select(OutboxEvent).where(
                OutboxEvent.aggregate_id == booking_id,
                OutboxEvent.event_type == "booking.confirmed",
            )
        ).one()
    producer = create_celery_app("bench-producer", get_settings())
    smtp = SmtpServer(latency=SMTP_LATENCY).start()
    results: list[tuple[int, float]] = []
    try:
        for pool in POOL_SIZES:
            env = stack.env(
                BOXOFFICE_SMTP_PORT=str(smtp.port),
                BOXOFFICE_NOTIFIER_EMAIL_CONCURRENCY=str(pool),
                BOXOFFICE_DB_POOL_SIZE=str(pool),
                BOXOFFICE_SMTP_RATE_PER_SECOND="100000",
                BOXOFFICE_LOG_LEVEL="WARNING",
            )
            worker = ServiceProcess(
                f"bench-email-{pool}",
                "boxoffice_notifier.main",
                env,
                stack.var / "bench",
                ("email",),
            ).start()
            worker.wait_for_log("ready.", timeout=120)
            before = len(smtp.messages())
            started = time.monotonic()
            for _ in range(MESSAGES):
                # A distinct event per message: each is a real delivery, none deduplicated.
                publish_event(
                    producer, event.event_type, event.payload | {"event_id": str(uuid.uuid4())}
                )
            target = before + MESSAGES
            wait_until(lambda: len(smtp.messages()) >= target, 600, "every email")  # noqa: B023
            elapsed = time.monotonic() - started
            worker.stop()
            results.append((pool, MESSAGES / elapsed))
            print(
                f"pool={pool:3d}  {MESSAGES} emails in {elapsed:6.2f}s  {results[-1][1]:7.1f}/s",
                flush=True,
            )
    finally:
        smtp.stop()
        stack.stop()
    best = max(results, key=lambda r: r[1])
    print(f"\nSMTP latency {SMTP_LATENCY}s, {os.cpu_count()} CPUs: best pool size {best[0]}")


if __name__ == "__main__":
    main()
