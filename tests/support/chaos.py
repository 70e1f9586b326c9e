"""The chaos run: real processes under booking load while things are killed and restarted.

Every process runs for real (two API processes, two relays, the notifier, the reaper, the
scheduler) on a private PostgreSQL database and a durable private Redis (or, with
CHAOS_REDIS=sentinel, a primary, a replica and a Sentinel: see chaos_redis). Clients create,
pay, cancel and abandon bookings, some paying through a Razorpay-compatible server whose first
refund call fails (chaos_payments), while, at random moments, the notifier, the reaper, a
relay and an API process are killed with SIGKILL (and restarted), Redis is restarted once
(or failed over twice) and PostgreSQL is restarted once, and a few poisoned messages are
queued. Then the run waits for the system to settle and counts what the invariants say.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from boxoffice_booking.catalog import create_screen, create_showtime, create_venue
from boxoffice_bookings import repository
from boxoffice_db.engine import make_engine
from boxoffice_db.migrate import upgrade_to_head
from boxoffice_devstack.servers import free_port
from boxoffice_messaging.routes import QUEUE_EMAIL, TASK_SEND_BOOKING_CONFIRMATION
from celery import Celery
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from tests.support import razorpay_server
from tests.support.chaos_payments import pay_by_razorpay_then_cancel, pay_with_faults
from tests.support.chaos_redis import ChaosRedis
from tests.support.processes import ServiceProcess, wait_for_http, wait_until
from tests.support.smtp_process import SmtpProcess
from tests.support.stack import API_KEY, Stack

ROWS = "ABCDEFGHIJKLMNOPQRST"
SEATS_PER_ROW = 25
HOLD_TTL_SECONDS = 4
# A notifier killed -9 after the SMTP server stored an email and before the worker recorded it
# sends that email again on redelivery: at least once, the one ambiguity SMTP leaves. It is
# the same message (the same Message-ID), and its first copy was stored just before the kill.
RESEND_WINDOW_SECONDS = 2.0
POISON = [
    "a string, not an envelope",
    {"event_id": "not-a-uuid", "event_type": "booking.confirmed"},
    {"event_id": str(uuid.uuid4()), "event_type": "booking.teleported", "aggregate_id": "?"},
]


@dataclass
class ChaosPlan:
    bookings: int
    kills_per_process: int
    seed: int
    clients: int = 6
    redis: str = "plain"  # or "sentinel"


@dataclass
class ChaosReport:
    """What happened, and what the database and the SMTP server say about it."""

    seed: int
    redis: str = "plain"
    actions: list[str] = field(default_factory=list)
    client: Counter[str] = field(default_factory=Counter)
    bookings_by_status: dict[str, int] = field(default_factory=dict)
    events_needing_email: int = 0
    emails_received: int = 0
    events_without_email: int = 0
    events_with_duplicate_emails: int = 0
    events_sent_again_after_a_kill: int = 0
    confirmed_without_one_confirmation: int = 0
    expired_not_announced_once: int = 0
    expired_still_holding_seats: int = 0
    seats_sold_twice: int = 0
    sold_seats_not_owned_by_a_confirmed_booking: int = 0
    outbox_unsent: int = 0
    money_without_ticket_or_refund: int = 0
    refunds_pending_at_end: int = 0
    refunds: int = 0
    refund_faults_fired: int = 0
    refunds_failed_then_settled: int = 0
    provider_captures_kept_without_ticket: int = 0
    provider_payments_refunded_twice: int = 0
    dead_letters: int = 0
    dead_letters_not_poisoned: int = 0
    poisoned_not_dead_lettered: int = 0
    dead_letter_reasons: list[str] = field(default_factory=list)
    duplicated_event_ids: list[str] = field(default_factory=list)
    resent_event_ids: list[str] = field(default_factory=list)
    settle_timeout: str | None = None  # what the system never settled on, if anything
    missing_event_ids: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def render(self) -> str:
        lines = [f"chaos run (seed {self.seed}, redis {self.redis}) in {self.seconds:.0f}s"]
        lines += [f"  action: {a}" for a in self.actions]
        if self.settle_timeout is not None:
            lines.append(f"  did not settle: {self.settle_timeout}")
        lines.append(f"  client outcomes: {dict(sorted(self.client.items()))}")
        lines.append(f"  bookings by status: {self.bookings_by_status}")
        for name in (
            "events_needing_email",
            "emails_received",
            "events_without_email",
            "events_with_duplicate_emails",
            "events_sent_again_after_a_kill",
            "confirmed_without_one_confirmation",
            "expired_not_announced_once",
            "expired_still_holding_seats",
            "seats_sold_twice",
            "sold_seats_not_owned_by_a_confirmed_booking",
            "outbox_unsent",
            "money_without_ticket_or_refund",
            "refunds_pending_at_end",
            "refunds",
            "refund_faults_fired",
            "refunds_failed_then_settled",
            "provider_captures_kept_without_ticket",
            "provider_payments_refunded_twice",
            "dead_letters",
            "dead_letters_not_poisoned",
            "poisoned_not_dead_lettered",
        ):
            lines.append(f"  {name}: {getattr(self, name)}")
        lines += [f"  dead letter: {r}" for r in self.dead_letter_reasons]
        lines += [f"  emailed twice: event {e}" for e in self.duplicated_event_ids]
        lines += [f"  sent again after a kill: event {e}" for e in self.resent_event_ids]
        lines += [f"  never emailed: event {e}" for e in self.missing_event_ids]
        return "\n".join(lines)


class ChaosSystem:
    """Every process of Boxoffice on its own database and durable Redis."""

    def __init__(self, stack: Stack, name: str, redis_mode: str = "plain") -> None:
        self.stack = stack
        # Each notifier kill: when it was killed and when it was started again, by the wall
        # clock the mail server uses.
        self.notifier_kills: list[tuple[float, float]] = []
        self.database_url = stack.postgres.create_database(name)
        upgrade_to_head(self.database_url)
        self.engine: Engine = make_engine(self.database_url, "chaos-test", pool_size=2)
        self.redis = ChaosRedis(stack.var / f"{name}-redis", redis_mode).start()
        self.smtp = SmtpProcess(stack.var / f"{name}-mail" / "messages").start()
        self.razorpay = razorpay_server.FakeRazorpay().start()
        self.ports = [free_port(), free_port()]
        self.logs: Path = stack.var / f"{name}-logs"
        env = stack.env(
            DATABASE_URL=self.database_url,
            **self.redis.env,
            BOXOFFICE_DB_POOL_SIZE="4",
            BOXOFFICE_HOLD_TTL_SECONDS=str(HOLD_TTL_SECONDS),
            BOXOFFICE_REAPER_SWEEP_INTERVAL_SECONDS="0.25",
            BOXOFFICE_SMTP_HOST="127.0.0.1",
            BOXOFFICE_SMTP_PORT=str(self.smtp.port),
            # Every chaos client shares one API key; its traffic is the point, not a limit.
            BOXOFFICE_RATE_LIMIT_REQUESTS="0",
            # A killed worker's messages come back after the visibility timeout; keep it
            # short here, and the retry cap under half of it.
            BOXOFFICE_CELERY_VISIBILITY_TIMEOUT_SECONDS="10",
            BOXOFFICE_NOTIFIER_RETRY_BACKOFF_SECONDS="0.5",
            BOXOFFICE_NOTIFIER_RETRY_BACKOFF_MAX_SECONDS="4",
            BOXOFFICE_NOTIFIER_MAX_RETRIES="40",
            # A kill -9 between BRPOP and the unacked record loses a message in Redis: the
            # relay re-sends deliveries that stay PENDING with an empty queue.
            BOXOFFICE_RELAY_REDELIVER_AFTER_SECONDS="15",
            BOXOFFICE_RELAY_REDELIVER_CHECK_SECONDS="2",
            BOXOFFICE_WORKER_CONCURRENCY="4",
            BOXOFFICE_LOG_LEVEL="INFO",
            # Payment faults: pending refunds are reconciled often, and a paying hold whose
            # webhooks are slow expires soon after its grace.
            BOXOFFICE_SCHEDULE_RECONCILE_REFUNDS="5",
            BOXOFFICE_REFUND_RETRY_AFTER_SECONDS="10",
            BOXOFFICE_REAPER_PAYMENT_GRACE_SECONDS="20",
            # A Razorpay-compatible provider: a real HTTP server in this process.
            BOXOFFICE_RAZORPAY_KEY_ID=razorpay_server.KEY_ID,
            BOXOFFICE_RAZORPAY_KEY_SECRET=razorpay_server.KEY_SECRET,
            BOXOFFICE_RAZORPAY_WEBHOOK_SECRET=razorpay_server.WEBHOOK_SECRET,
            BOXOFFICE_RAZORPAY_BASE_URL=self.razorpay.base_url,
            BOXOFFICE_PAYMENT_TIMEOUT_SECONDS="5",
        )
        modules = {
            "relay-1": "boxoffice_booking.relay",
            "relay-2": "boxoffice_booking.relay",
            "notifier": "boxoffice_notifier.main",
            "reaper": "boxoffice_reaper.main",
            "scheduler": "boxoffice_scheduler.main",
        }
        self.processes = {
            name: ServiceProcess(name, module, env, self.logs) for name, module in modules.items()
        }
        for i, port in enumerate(self.ports, start=1):
            self.processes[f"api-{i}"] = ServiceProcess(
                f"api-{i}",
                "boxoffice_booking.main",
                {**env, "BOXOFFICE_API_PORT": str(port)},
                self.logs,
            )
        self.celery = Celery("chaos-producer", broker=self.redis.url)
        self.celery.conf.update(
            task_serializer="json",
            accept_content=["json"],
            broker_transport_options=self.redis.transport_options(),
        )

    def start(self) -> None:
        for process in self.processes.values():
            process.start()
        for port in self.ports:
            wait_for_http(f"http://127.0.0.1:{port}/readyz", timeout=300)
        self.processes["notifier"].wait_for_log("ready.", timeout=300)
        self.processes["reaper"].wait_for_log("ready.", timeout=300)

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()
        self.smtp.stop()
        self.razorpay.stop()
        self.redis.stop()
        self.engine.dispose()

    def make_showtimes(self, seats_needed: int) -> list[tuple[uuid.UUID, list[str]]]:
        per_showtime = len(ROWS) * SEATS_PER_ROW
        showtimes = []
        with Session(self.engine) as session, session.begin():
            venue = create_venue(session, "Chaos Palace", "Asia/Kolkata")
            screen = create_screen(
                session, venue.id, "Screen 1", dict.fromkeys(ROWS, SEATS_PER_ROW), blocked=()
            )
            starts = datetime.now(UTC) + timedelta(days=2)
            for i in range(-(-seats_needed // per_showtime)):
                showtime = create_showtime(
                    session,
                    screen.id,
                    f"Chaos {i}",
                    starts + timedelta(hours=3 * i),
                    starts + timedelta(hours=3 * i + 2),
                    {"standard": 25000},
                )
                labels = [f"{row}{n}" for row in ROWS for n in range(1, SEATS_PER_ROW + 1)]
                showtimes.append((showtime.id, labels))
        return showtimes


class Clients:
    """Booking traffic that rides out dead API processes and database restarts."""

    def __init__(self, system: ChaosSystem, report: ChaosReport, rng: random.Random) -> None:
        self.system = system
        self.report = report
        self.rng = rng
        self.lock = threading.Lock()
        self.done = 0
        self.http = [
            httpx.Client(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Authorization": f"Bearer {API_KEY}"},
                timeout=10,
            )
            for port in system.ports
        ]
        self.confirmed_seats: list[tuple[uuid.UUID, str]] = []

    def count(self, outcome: str) -> None:
        with self.lock:
            self.report.client[outcome] += 1

    def call(self, method: str, path: str, body: dict[str, object]) -> httpx.Response | None:
        """Send `body` as JSON until an answer that is not a server error; None if none comes."""
        return self.send(method, path, json=body)

    def send(self, method: str, path: str, **request: Any) -> httpx.Response | None:
        """Send until an answer that is not a server error; None if it never comes."""
        deadline = time.monotonic() + 90
        for attempt in itertools.count():
            client = self.http[attempt % len(self.http)]
            try:
                response = client.request(method, path, **request)
            except httpx.TransportError:
                self.count("retried_transport_error")
            else:
                retry_after = response.headers.get("retry-after", "")
                if response.status_code == 409 and retry_after.isdigit():
                    # As docs/api.md asks: a 409 with Retry-After (a hold of the seat still
                    # being decided, maybe our own first try's in a killed process) is retried.
                    self.count("retried_409_retry_after")
                    if time.monotonic() > deadline:
                        return response
                    time.sleep(int(retry_after))
                    continue
                if response.status_code < 500:
                    return response
                self.count(f"retried_{response.status_code}")
            if time.monotonic() > deadline:
                return None
            time.sleep(min(0.1 * 2 ** min(attempt, 4), 1.0))
        return None

    def book(self, index: int, showtime_id: uuid.UUID, seat: str) -> None:
        customer = {"email": f"chaos-{index}@example.com", "phone": "+919800000001"}
        held = self.call(
            "POST",
            "/v1/bookings",
            {"showtime_id": str(showtime_id), "seats": [seat], "customer": customer},
        )
        if held is None or held.status_code != 201:
            # A 409 here is usually our own hold: the first try committed, its answer was lost.
            self.count(f"hold_{held.status_code if held is not None else 'gave_up'}")
            return
        self.count("hold_201")
        booking_id = held.json()["id"]
        choice = index % 4
        if index % 8 == 5:
            pay_by_razorpay_then_cancel(self, booking_id, self.system.razorpay)
        elif choice in (0, 1):
            paid = self.call(
                "POST",
                f"/v1/bookings/{booking_id}/payments",
                {"provider": "test", "outcome": "succeeded"},
            )
            self.count(f"pay_{paid.status_code if paid is not None else 'gave_up'}")
            if paid is not None and paid.status_code == 201:
                with self.lock:
                    self.confirmed_seats.append((showtime_id, seat))
        elif choice == 2:
            cancelled = self.call("POST", f"/v1/bookings/{booking_id}/cancel", {})
            self.count(f"cancel_{cancelled.status_code if cancelled is not None else 'gave_up'}")
        elif index % 8 == 3:
            pay_with_faults(self, booking_id, held.json())
        else:
            self.count("abandoned")
        if index % 10 == 5:
            self.steal()

    def steal(self) -> None:
        """Try to hold a seat somebody has paid for: must be refused."""
        with self.lock:
            if not self.confirmed_seats:
                return
            showtime_id, seat = self.rng.choice(self.confirmed_seats)
        taken = self.call(
            "POST",
            "/v1/bookings",
            {
                "showtime_id": str(showtime_id),
                "seats": [seat],
                "customer": {"email": "thief@example.com"},
            },
        )
        self.count(f"steal_{taken.status_code if taken is not None else 'gave_up'}")

    def run(self, plan: ChaosPlan, showtimes: list[tuple[uuid.UUID, list[str]]]) -> None:
        work = iter(
            (i, showtime_id, seat)
            for i, (showtime_id, seat) in enumerate(
                (s, label) for s, labels in showtimes for label in labels
            )
            if i < plan.bookings
        )

        def client() -> None:
            while True:
                with self.lock:
                    item = next(work, None)
                if item is None:
                    return
                self.book(*item)
                with self.lock:
                    self.done += 1

        threads = [threading.Thread(target=client) for _ in range(plan.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for http in self.http:
            http.close()


def chaos_actions(system: ChaosSystem, plan: ChaosPlan) -> list[tuple[str, Callable[[], str]]]:
    """The disasters, each a (name, action) that returns what it did."""
    rng = random.Random(plan.seed + 1)

    def kill(name: str) -> Callable[[], str]:
        def action() -> str:
            process = system.processes[name]
            killed_at = time.time()
            process.kill()
            down = rng.uniform(0.2, 2.0)
            time.sleep(down)
            if name == "notifier":
                system.notifier_kills.append((killed_at, time.time()))
            process.start()
            return f"kill -9 {name}, restarted after {down:.1f}s"

        return action

    def restart_postgres() -> str:
        started = time.monotonic()
        system.stack.postgres.pg_ctl("restart", "-m", "fast", "-w")
        return f"PostgreSQL restarted (fast shutdown) in {time.monotonic() - started:.1f}s"

    def poison() -> str:
        ids = []
        for message in POISON:
            ids.append(
                system.celery.send_task(
                    TASK_SEND_BOOKING_CONFIRMATION, args=[message], queue=QUEUE_EMAIL
                ).id
            )
        system.poisoned_task_ids = ids  # type: ignore[attr-defined]
        return f"queued {len(ids)} poisoned messages"

    actions: list[tuple[str, Callable[[], str]]] = []
    for _ in range(plan.kills_per_process):
        for name in ("notifier", "reaper", rng.choice(["relay-1", "relay-2"]), "api-1"):
            actions.append((name, kill(name)))
    actions += [*system.redis.actions(), ("postgres", restart_postgres), ("poison", poison)]
    rng.shuffle(actions)
    return actions


def run_chaos(stack: Stack, plan: ChaosPlan) -> ChaosReport:
    """Run the whole scenario and return the counts (the caller asserts on them)."""
    started = time.monotonic()
    report = ChaosReport(seed=plan.seed, redis=plan.redis)
    rng = random.Random(plan.seed)
    system = ChaosSystem(stack, f"chaos_{uuid.uuid4().hex[:10]}", plan.redis)
    try:
        system.start()
        showtimes = system.make_showtimes(plan.bookings)
        clients = Clients(system, report, rng)
        load = threading.Thread(target=clients.run, args=(plan, showtimes))
        load.start()
        actions = chaos_actions(system, plan)
        # Each action fires when a random share of the bookings is done: random moments
        # that stay inside the load however fast this machine is.
        moments = sorted(rng.uniform(0.05, 0.9) for _ in actions)
        for moment, (_, action) in zip(moments, actions, strict=True):
            while load.is_alive() and clients.done < moment * plan.bookings:
                time.sleep(0.05)
            report.actions.append(f"at {clients.done}/{plan.bookings} bookings: {action()}")
        load.join()
        for name, process in system.processes.items():
            assert process.process is not None
            if process.process.poll() is not None:
                report.actions.append(
                    f"{name} had exited by itself (code {process.process.returncode})"
                )
        try:
            settle(system)
        except TimeoutError as exc:
            # Count anyway: the report (which process exited, what is left) says why.
            report.settle_timeout = str(exc)
        count(system, report)
    finally:
        report.seconds = time.monotonic() - started
        system.stop()
    return report


def scalar(engine: Engine, sql: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(sql)).scalar_one())


def settle(system: ChaosSystem) -> None:
    """Wait until every hold has ended, the outbox is empty and the emails have arrived."""
    engine = system.engine
    wait_until(
        lambda: scalar(engine, "SELECT count(*) FROM bookings WHERE status = 'PENDING'") == 0,
        HOLD_TTL_SECONDS + 90,
        "every unpaid hold to expire",
        interval=0.5,
    )
    wait_until(
        lambda: scalar(engine, "SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0,
        60,
        "the outbox to drain",
        interval=0.5,
    )

    def all_mailed() -> bool:
        # Every event that needs an email has one (refund emails are for events outside that
        # set, so comparing counts would stop the wait early). A message the killed notifier
        # held comes back when kombu next restores unacknowledged messages: up to about 100 s.
        with engine.connect() as connection:
            expected = {row[0] for row in connection.execute(text(EVENTS_NEEDING_EMAIL))}
        return expected <= set(event_ids_mailed(system))

    with contextlib.suppress(TimeoutError):  # the counts say what is missing
        wait_until(all_mailed, 120, "an email for every event", interval=0.5)
    with contextlib.suppress(TimeoutError):  # the report counts what is left pending
        wait_until(
            lambda: scalar(engine, "SELECT count(*) FROM refunds WHERE status = 'pending'") == 0,
            90,
            "every refund to settle",
            interval=0.5,
        )
    # Give late duplicates (a redelivery after the visibility timeout) the chance to show.
    time.sleep(11)


EVENTS_NEEDING_EMAIL = (
    "SELECT event_id::text FROM outbox WHERE event_type IN "
    "('booking.confirmed', 'booking.expired', 'booking.cancelled')"
)


def event_ids_mailed(system: ChaosSystem) -> Counter[str]:
    """How many different emails each event got (a re-send of one message counts once)."""
    return Counter(event for event, _ in copies_by_message(system))


def copies_by_message(system: ChaosSystem) -> dict[tuple[str, str], list[float]]:
    """When each copy of each (event id, Message-ID) was stored, in order."""
    copies: dict[tuple[str, str], list[float]] = {}
    for message, stored_at in system.smtp.received():
        key = (str(message["X-Boxoffice-Event-Id"]), str(message["Message-ID"]))
        copies.setdefault(key, []).append(stored_at)
    return {key: sorted(times) for key, times in copies.items()}


def sent_again_after_a_kill(copies: list[float], kills: list[tuple[float, float]]) -> bool:
    """Whether every copy but the last was stored just before a notifier was killed -9, or
    while it was down: the server finishes storing a message whose sender it has just lost
    (the kill landed after the message's last byte, before the server's 250). No notifier
    runs between a kill and the restart, so what is stored then was handed over before it."""
    return all(
        any(killed - RESEND_WINDOW_SECONDS <= stored <= restarted for killed, restarted in kills)
        for stored in copies[:-1]
    )


def count(system: ChaosSystem, report: ChaosReport) -> None:
    engine = system.engine
    with engine.connect() as connection:
        report.bookings_by_status = {
            status: int(n)
            for status, n in connection.execute(
                text("SELECT status::text, count(*) FROM bookings GROUP BY status ORDER BY 1")
            )
        }
        expected = {row[0] for row in connection.execute(text(EVENTS_NEEDING_EMAIL))}
        confirmations = {
            str(booking_id): int(n)
            for booking_id, n in connection.execute(
                text(
                    "SELECT b.id, count(o.id) FROM bookings b LEFT JOIN outbox o "
                    "ON o.aggregate_id = b.id AND o.event_type = 'booking.confirmed' "
                    "WHERE b.status = 'CONFIRMED' GROUP BY b.id"
                )
            )
        }
        confirmation_events = {
            str(event_id): str(aggregate)
            for event_id, aggregate in connection.execute(
                text(
                    "SELECT event_id, aggregate_id FROM outbox "
                    "WHERE event_type = 'booking.confirmed'"
                )
            )
        }
        report.expired_not_announced_once = scalar(
            engine,
            "SELECT count(*) FROM bookings b WHERE b.expired_at IS NOT NULL AND (SELECT count(*) "
            "FROM outbox o WHERE o.aggregate_id = b.id AND o.event_type = 'booking.expired') <> 1",
        )
        report.expired_still_holding_seats = scalar(
            engine,
            "SELECT count(*) FROM showtime_seats s JOIN bookings b ON b.id = s.booking_id "
            "WHERE b.status = 'EXPIRED'",
        )
        report.seats_sold_twice = scalar(
            engine,
            "SELECT count(*) FROM (SELECT b.showtime_id, bs.label FROM booking_seats bs "
            "JOIN bookings b ON b.id = bs.booking_id WHERE b.status = 'CONFIRMED' "
            "GROUP BY 1, 2 HAVING count(*) > 1) AS twice",
        )
        report.sold_seats_not_owned_by_a_confirmed_booking = scalar(
            engine,
            "SELECT count(*) FROM showtime_seats s LEFT JOIN bookings b ON b.id = s.booking_id "
            "WHERE s.state = 'sold' AND (b.id IS NULL OR b.status <> 'CONFIRMED')",
        )
        report.outbox_unsent = scalar(
            engine, "SELECT count(*) FROM outbox WHERE published_at IS NULL"
        )
        report.refunds = scalar(engine, "SELECT count(*) FROM refunds")
        # A refund is noted once per failed call and once when it settles.
        report.refunds_failed_then_settled = scalar(
            engine, "SELECT count(*) FROM refunds WHERE status = 'refunded' AND attempts > 1"
        )
        booking_status_by_order = {
            str(order): str(status)
            for order, status in connection.execute(
                text(
                    "SELECT p.provider_reference, b.status::text FROM payments p "
                    "JOIN bookings b ON b.id = p.booking_id WHERE p.provider = 'razorpay'"
                )
            )
        }
        with Session(engine) as session:
            report.money_without_ticket_or_refund = repository.captured_without_ticket_or_refund(
                session
            )
            report.refunds_pending_at_end = repository.count_pending_refunds(session)
        letters = list(
            connection.execute(text("SELECT task_id, error_type, reason FROM dead_letters"))
        )
    received = copies_by_message(system)
    mailed = Counter(event for event, _ in received)
    report.events_needing_email = len(expected)
    report.emails_received = sum(len(times) for times in received.values())
    report.events_without_email = len(expected - set(mailed))
    copies = {key: times for key, times in received.items() if len(times) > 1}
    unexplained = {
        event
        for (event, _), times in copies.items()
        if not sent_again_after_a_kill(times, system.notifier_kills)
    }
    report.resent_event_ids = sorted({event for event, _ in copies} - unexplained)
    report.events_sent_again_after_a_kill = len(report.resent_event_ids)
    report.duplicated_event_ids = sorted(e for e in expected if mailed[e] > 1 or e in unexplained)
    report.missing_event_ids = sorted(expected - set(mailed))
    report.events_with_duplicate_emails = len(report.duplicated_event_ids)
    confirmation_emails: Counter[str] = Counter()
    for event_id, aggregate in confirmation_events.items():
        confirmation_emails[aggregate] += mailed[event_id]
    report.confirmed_without_one_confirmation = sum(
        1
        for booking_id, events in confirmations.items()
        if events != 1 or confirmation_emails[booking_id] != 1
    )
    poisoned = set(getattr(system, "poisoned_task_ids", []))
    report.dead_letters = len(letters)
    report.dead_letters_not_poisoned = sum(
        1 for task_id, _, _ in letters if task_id not in poisoned
    )
    report.poisoned_not_dead_lettered = len(poisoned - {task_id for task_id, _, _ in letters})
    report.dead_letter_reasons = [f"{error_type}: {reason}" for _, error_type, reason in letters]
    count_provider_money(system, report, booking_status_by_order)


def count_provider_money(
    system: ChaosSystem, report: ChaosReport, booking_status_by_order: dict[str, str]
) -> None:
    """What the Razorpay server itself holds: money kept must be a confirmed booking's."""
    state = system.razorpay.state
    with state.lock:
        payments = [dict(p) for p in state.payments.values()]
        refunds = Counter(str(r["payment_id"]) for r in state.refunds.values())
        report.refund_faults_fired = len(state.refund_faults_fired)
    report.provider_captures_kept_without_ticket = sum(
        1
        for p in payments
        if p["status"] == "captured" and booking_status_by_order.get(p["order_id"]) != "CONFIRMED"
    )
    report.provider_payments_refunded_twice = sum(1 for n in refunds.values() if n > 1)
