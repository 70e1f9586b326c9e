"""Scenario 4: confirmations through outbox -> relay -> Celery -> notifier -> SMTP.

A steady 100 confirmations/s gives the end-to-end latency (payment request sent -> email
accepted by the SMTP server). Then a backlog of confirmations is committed with the relay
stopped and drained when it starts: emails/s from the first email to the last. The baseline is
a stock Celery no-op task with the notifier's worker settings draining the same number of
messages (of the same size) from a queue on the same Redis: tasks/s from first to last.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Sequence
from typing import Any

from boxoffice_db.engine import session_scope
from boxoffice_db.models import Delivery, OutboxEvent, TaskRecord
from boxoffice_messaging.celery_app import create_celery_app
from boxoffice_messaging.outbox import event_args_repr, task_id_for
from boxoffice_messaging.redis_client import redis_client
from boxoffice_messaging.routes import EVENT_ROUTES
from boxoffice_settings import get_settings
from kombu import Queue
from sqlalchemy import func, select, text

from bench.costs import CostMeter
from bench.footprint import cpu_seconds
from bench.http_client import Client, Reply, closed_loop, paced
from bench.noop_worker import QUEUE_NOOP, TASK_NOOP
from bench.report import Row, ScenarioResult, number
from bench.scenarios import Context, ratio, say
from bench.scenarios.booking_load import Booker
from bench.seating import SEATS_PER_SHOWTIME, create_showtimes
from bench.stats import Goal, summary_ms
from tests.support.processes import ServiceProcess, wait_until

Held = tuple[str, str]  # booking id, reference


async def _hold(booker: Booker, indices: Sequence[int]) -> list[Held]:
    replies = await closed_loop(16, len(indices), lambda k: booker.hold(indices[k]))
    return [(r.json()["id"], r.json()["reference"]) for r in replies if r.status == 201]


def _wait_for_emails(ctx: Context, references: list[str], timeout: float) -> dict[str, float]:
    """Wait until an email about each booking has arrived; reference -> arrival time."""
    wanted = set(references)
    wait_until(
        lambda: len(ctx.system.mailbox.first_arrivals(wanted)) == len(wanted),
        timeout,
        f"{len(wanted)} confirmation emails",
        interval=0.5,
    )
    return ctx.system.mailbox.first_arrivals(wanted)


def _steady(ctx: Context, showtimes: list[str], count: int) -> tuple[list[Held], list[Reply]]:
    async def go() -> tuple[list[Held], list[Reply]]:
        async with Client(ctx.system.api_url, ctx.api_key, 64) as client:
            booker = Booker(client, showtimes)
            held = await _hold(booker, range(count))
            payments = await paced(
                ctx.sizes.steady_rate, len(held), lambda k: booker.pay(held[k][0])
            )
            return held, payments

    return asyncio.run(go())


def _backlog(
    ctx: Context, showtimes: list[str], first: int, count: int
) -> tuple[list[Held], float, CostMeter]:
    """Confirm `count` bookings as fast as the API allows; returns them, confirmations/s and
    the API's and PostgreSQL's CPU over the payments alone."""
    meter = CostMeter(_service_pids(ctx, "api"))

    async def go() -> tuple[list[Held], float]:
        async with Client(ctx.system.api_url, ctx.api_key, 16) as client:
            booker = Booker(client, showtimes)
            held = await _hold(booker, range(first, first + count))
            meter.start()
            started = time.perf_counter()
            payments = await closed_loop(16, len(held), lambda k: booker.pay(held[k][0]))
            rate = len(payments) / (time.perf_counter() - started)
            meter.stop()
            paid = [h for h, r in zip(held, payments, strict=True) if r.status == 201]
            return paid, rate

    paid, rate = asyncio.run(go())
    return paid, rate, meter


def _service_pids(ctx: Context, *services: str) -> dict[str, int]:
    """The named services' processes, with PostgreSQL's and Redis's."""
    pids = {name: pid for name, pid in ctx.system.pids().items() if name in services}
    postgres = ctx.infra.postgres_pid()
    if postgres is not None:
        pids["postgresql"] = postgres
    if ctx.infra.redis.process is not None:
        pids["redis"] = ctx.infra.redis.process.pid
    return pids


def _commit_times(booking_ids: list[str]) -> dict[str, float]:
    """Booking id -> wall clock of its payment's commit: PostgreSQL's commit timestamp
    (`track_commit_timestamp`, bench/system.py) of the transaction that wrote its capture to
    the ledger, which is only ever inserted into, so the row's `xmin` is that transaction."""
    with session_scope() as session:
        rows = session.execute(
            text(
                "SELECT booking_id, pg_xact_commit_timestamp(xmin) FROM payment_ledger"
                " WHERE kind = 'captured' AND booking_id = ANY(:ids)"
            ),
            {"ids": [uuid.UUID(b) for b in booking_ids]},
        ).all()
    committed = {str(booking_id): at.timestamp() for booking_id, at in rows if at is not None}
    missing = set(booking_ids) - committed.keys()
    if missing:
        raise RuntimeError(f"no commit timestamp for {len(missing)} paid bookings")
    return committed


def _stages(committed: dict[str, float]) -> dict[str, dict[str, float]]:
    """Where the confirmations' time went after their payment committed (booking id -> wall
    clock of the commit), from the rows the pipeline writes: the relay's publish
    (`published_at`, set once its whole batch is out), the notifier starting the task, the
    delivery recorded as sent. Every process runs on this machine's clock."""
    with session_scope() as session:
        events = session.execute(
            select(OutboxEvent.event_id, OutboxEvent.aggregate_id, OutboxEvent.published_at).where(
                OutboxEvent.event_type == "booking.confirmed",
                OutboxEvent.aggregate_id.in_([uuid.UUID(b) for b in committed]),
            )
        ).all()
        route = EVENT_ROUTES["booking.confirmed"][0]
        task_ids = {event_id: task_id_for(event_id, route) for event_id, _, _ in events}
        started = dict(
            session.execute(
                select(TaskRecord.id, TaskRecord.started_at).where(
                    TaskRecord.id.in_(task_ids.values())
                )
            ).all()
        )
        sent = dict(
            session.execute(
                select(Delivery.event_id, Delivery.sent_at).where(
                    Delivery.event_id.in_(task_ids), Delivery.channel == "email"
                )
            ).all()
        )
    hops: dict[str, list[float]] = {"relay": [], "queue": [], "task": []}
    for event_id, booking_id, published in events:
        began, done = started.get(task_ids[event_id]), sent.get(event_id)
        if published is None or began is None or done is None:
            continue
        hops["relay"].append(published.timestamp() - committed[str(booking_id)])
        hops["queue"].append((began - published).total_seconds())
        hops["task"].append((done - began).total_seconds())
    return {hop: summary_ms(values) for hop, values in hops.items()}


def _publish_rate(booking_ids: list[str]) -> float:
    """Events/s the relay published these bookings' confirmations at, first to last."""
    with session_scope() as session:
        first, last, count = session.execute(
            select(
                func.min(OutboxEvent.published_at),
                func.max(OutboxEvent.published_at),
                func.count(),
            ).where(
                OutboxEvent.event_type == "booking.confirmed",
                OutboxEvent.aggregate_id.in_([uuid.UUID(b) for b in booking_ids]),
            )
        ).one()
    span = (last - first).total_seconds() if first is not None and last is not None else 0.0
    return (count - 1) / span if span > 0 else math.nan


RELAY_FAILURE = "outbox relay cannot publish"


def _relay_failures(ctx: Context) -> list[str]:
    """The relay's log lines of failed batches so far (each rolled back, then retried)."""
    return [
        line for line in ctx.system.processes["relay"].log().splitlines() if RELAY_FAILURE in line
    ]


def _pid(process: ServiceProcess) -> int:
    assert process.process is not None, f"{process.name} is not running"
    return process.process.pid


def _a_confirmation_payload() -> dict[str, Any]:
    with session_scope() as session:
        payload: dict[str, Any] = session.execute(
            text("SELECT payload FROM outbox WHERE event_type = 'booking.confirmed' LIMIT 1")
        ).scalar_one()
        return payload


def _noop_drain_rate(ctx: Context, count: int) -> tuple[float, float]:
    """Fill a queue with `count` no-op tasks, start a worker, time first to last completion;
    returns tasks/s and the worker's CPU ms per task over the same span."""
    app = create_celery_app("bench-producer", get_settings())
    app.conf.task_queues = [*app.conf.task_queues, Queue(QUEUE_NOOP)]
    payload = _a_confirmation_payload()
    with app.producer_or_acquire() as producer:
        for _ in range(count):
            # As the relay sends events (outbox.publish_event), so messages are the same size.
            app.send_task(
                TASK_NOOP,
                args=[payload],
                queue=QUEUE_NOOP,
                producer=producer,
                argsrepr=event_args_repr(payload),
                kwargsrepr="{}",
            )
    redis = redis_client(ctx.infra.redis.url)

    def in_flight() -> bool:
        return any(QUEUE_NOOP.encode() in value for value in redis.hvals("unacked"))

    worker = ServiceProcess("noop-worker", "bench.noop_worker", ctx.system.env, ctx.system.logs)
    worker.start()
    try:
        deadline = time.monotonic() + 300
        while redis.llen(QUEUE_NOOP) >= count:
            if time.monotonic() > deadline:
                raise TimeoutError("the no-op worker never took a task")
            time.sleep(0.001)
        first = time.perf_counter()
        cpu = cpu_seconds(_pid(worker))
        while redis.llen(QUEUE_NOOP) or in_flight():
            if time.monotonic() > deadline:
                raise TimeoutError("the no-op worker did not drain its queue")
            time.sleep(0.001)
        cpu_ms = (cpu_seconds(_pid(worker)) - cpu) * 1000 / (count - 1)
        return (count - 1) / (time.perf_counter() - first), cpu_ms
    finally:
        worker.stop()
        redis.close()


def run_notifications(ctx: Context) -> ScenarioResult:
    sizes = ctx.sizes
    rate = sizes.steady_rate
    result = ScenarioResult("notifications", f"4. Notification pipeline ({rate}/s, then backlog)")
    steady_count = rate * sizes.steady_seconds
    showtimes = create_showtimes(
        math.ceil((steady_count + sizes.burst_confirmations) / SEATS_PER_SHOWTIME)
    )

    relay_failures_before = len(_relay_failures(ctx))
    say(f"4. notifications: {steady_count} confirmations at {rate}/s")
    # The relay's CPU per booking (its confirmation event) over the steady phase,
    # with the relay long started (the backlog phase below restarts it).
    relay_costs = CostMeter(_service_pids(ctx, "relay")).start()
    held, payments = _steady(ctx, showtimes, steady_count)
    paid = [(h, r) for h, r in zip(held, payments, strict=True) if r.status == 201]
    emails = _wait_for_emails(ctx, [ref for (_, ref), _ in paid], 120)
    relay_costs.stop()
    # From the payment request to the email: what the customer waits.
    steady_user = summary_ms([emails[ref] - reply.sent_at for (_, ref), reply in paid])
    # From the payment's commit (the confirmation and its outbox row) to the email: the
    # outbox -> relay -> Celery -> notifier -> SMTP pipeline the goal is about.
    committed = _commit_times([booking_id for (booking_id, _), _ in paid])
    steady_latency = summary_ms(
        [emails[ref] - committed[booking_id] for (booking_id, ref), _ in paid]
    )
    # From the load generator's reading of the answer, as runs before 2026-12-05 measured it:
    # after the commit by however long the answer took to come back.
    answer_latency = summary_ms(
        [emails[ref] - (reply.sent_at + reply.latency) for (_, ref), reply in paid]
    )
    payment_latency = summary_ms([r.latency for _, r in paid])
    steady_stages = _stages(committed)
    answered = [r.sent_at + r.latency for _, r in paid]
    achieved = len(paid) / (max(answered) - min(r.sent_at for _, r in paid)) if paid else math.nan

    say(f"4. notifications: a backlog of {sizes.burst_confirmations}, then the no-op baseline")
    relay = ctx.system.processes["relay"]
    relay.stop()
    backlog, confirm_rate, payment_costs = _backlog(
        ctx, showtimes, steady_count, sizes.burst_confirmations
    )
    # CPU time per message does not depend on what other jobs leave of the machine.
    redis = redis_client(ctx.infra.redis.url)
    drain = CostMeter(_service_pids(ctx, "notifier"), redis).start()
    relay.start()
    emails = _wait_for_emails(ctx, [ref for _, ref in backlog], 300)
    drain.stop()
    redis.close()
    notifier_cpu_ms = drain.cpu_ms_per("notifier", len(backlog))
    arrived = sorted(emails[ref] for _, ref in backlog)
    email_rate = (len(arrived) - 1) / (arrived[-1] - arrived[0]) if len(arrived) > 1 else math.nan

    relay_rate = _publish_rate([booking_id for booking_id, _ in backlog])

    noop_rate, noop_cpu_ms = _noop_drain_rate(ctx, sizes.noop_tasks)
    drain_ratio = ratio(email_rate, noop_rate)
    relay_failures = _relay_failures(ctx)[relay_failures_before:]
    result.data = {
        "steady": {
            "rate": rate,
            "confirmations": len(paid),
            "achieved_confirmations_per_second": round(achieved, 1),
            "pipeline_commit_to_email": steady_latency,
            "answer_to_email": answer_latency,
            "payment_request_to_email": steady_user,
            "payment_api": payment_latency,
            "stages": steady_stages,
            "relay_cpu_ms_per_booking": round(relay_costs.cpu_ms_per("relay", len(paid)), 2),
        },
        "backlog": {
            "confirmations": len(backlog),
            "api_confirmations_per_second": round(confirm_rate, 1),
            "emails_per_second": round(email_rate, 1),
            "notifier_cpu_ms_per_email": round(notifier_cpu_ms, 2),
            "postgres_cpu_ms_per_email": round(drain.cpu_ms_per("postgresql", len(backlog)), 2),
            "redis_cpu_ms_per_email": round(drain.cpu_ms_per("redis", len(backlog)), 3),
            "redis_commands_per_email": round(drain.commands_per(len(backlog)), 2),
            "api_cpu_ms_per_payment": round(payment_costs.cpu_ms_per("api", len(backlog)), 2),
            "other_jobs_cores_payments": round(payment_costs.other_jobs_cores, 2),
            "other_jobs_cores_drain": round(drain.other_jobs_cores, 2),
            "postgres_cpu_ms_per_payment": round(
                payment_costs.cpu_ms_per("postgresql", len(backlog)), 2
            ),
            "relay_events_per_second": round(relay_rate, 1),
        },
        "relay_failed_batches": len(relay_failures),
        "baseline_noop_tasks": sizes.noop_tasks,
        "baseline_noop_per_second": round(noop_rate, 1),
        "baseline_noop_cpu_ms_per_task": round(noop_cpu_ms, 2),
        "ratio": round(drain_ratio, 3),
    }
    result.rows = [
        Row(
            f"confirmations/s achieved (offered {rate}/s)",
            number(achieved),
            goal=Goal(
                result.title, f"confirmations/s at {rate}/s offered", achieved, 0.95 * rate, False
            ),
        ),
        Row("commit → email p50", f"{number(steady_latency['p50_ms'])} ms"),
        Row(
            "commit → email p99",
            f"{number(steady_latency['p99_ms'])} ms",
            goal=Goal(
                result.title,
                f"commit → email p99 at {rate}/s",
                steady_latency["p99_ms"],
                250,
                True,
                " ms",
            ),
        ),
        Row(
            "answer → email p50 / p99 (from the load generator's reading of the answer)",
            f"{number(answer_latency['p50_ms'])} / {number(answer_latency['p99_ms'])} ms",
        ),
        Row(
            "hops p50 / p99: commit → published, → task started, → sent",
            " · ".join(
                f"{number(steady_stages[hop]['p50_ms'])} / {number(steady_stages[hop]['p99_ms'])}"
                for hop in ("relay", "queue", "task")
            )
            + " ms",
        ),
        Row(
            "payment request → email p50 / p99",
            f"{number(steady_user['p50_ms'])} / {number(steady_user['p99_ms'])} ms",
            goal=Goal(
                result.title, "payment request → email p99", steady_user["p99_ms"], 500, True, " ms"
            ),
        ),
        Row(
            "backlog drain, emails/s",
            number(email_rate),
            f"{number(noop_rate)} no-op/s",
            number(drain_ratio, 3),
            Goal(result.title, "emails/s ratio to no-op", round(drain_ratio, 3), 0.5, False),
        ),
        Row("backlog published by the relay, events/s", number(relay_rate)),
        Row(
            "worker CPU per message (backlog)",
            f"{number(notifier_cpu_ms, 2)} ms",
            f"{number(noop_cpu_ms, 2)} ms",
            number(ratio(notifier_cpu_ms, noop_cpu_ms), 1),
            Goal(
                result.title, "notifier CPU per email", round(notifier_cpu_ms, 2), 3.5, True, " ms"
            ),
        ),
        Row("API confirmations/s (16 conns)", number(confirm_rate)),
        Row("relay batches failed and retried (its log)", str(len(relay_failures))),
    ]
    if len(paid) != steady_count:
        result.failures.append(f"{len(paid)} of {steady_count} steady confirmations succeeded")
    if len(backlog) != sizes.burst_confirmations:
        result.failures.append(
            f"{len(backlog)} of {sizes.burst_confirmations} backlog confirmations succeeded"
        )
    if relay_failures:
        # Each is a batch rolled back and published again, after a backoff: a latency tail.
        result.notes.append(
            f"the relay failed {len(relay_failures)} batch(es) and retried them; the first: "
            + relay_failures[0][:300]
        )
    received = ctx.system.mailbox.count()
    expected = len(paid) + len(backlog)
    if received != expected:
        result.notes.append(f"{received} emails arrived for {expected} confirmations")
    return result
