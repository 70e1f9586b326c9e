"""The benchmark harness measures what it claims: a smoke run against the baseline server."""

from __future__ import annotations

import asyncio
import shutil
import smtplib
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from boxoffice_devstack.servers import Postgres, free_port
from boxoffice_notifier.smtp import SmtpSender
from boxoffice_settings import Settings
from sqlalchemy import create_engine, text

from bench.http_client import burst, encode_request
from bench.mailbox import Mailbox
from bench.report import Row, ScenarioResult, markdown_table
from bench.seating import ROWS, SEATS_PER_ROW, create_showtimes, seat_label
from bench.stats import Goal, percentile
from bench.system import commit_timestamps_on
from bench.wrk import run_wrk
from tests.support.processes import ServiceProcess, wait_for_http
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def baseline_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = {"BOXOFFICE_API_PORT": str(port), "PATH": "/usr/bin:/bin"}
    logs: Path = tmp_path_factory.mktemp("bench-logs")
    server = ServiceProcess("baseline", "bench.baseline_app", env, logs).start()
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def hold_request(url: str, seat: str) -> bytes:
    return encode_request(
        "POST",
        "/v1/bookings",
        url.removeprefix("http://"),
        {"Authorization": "Bearer whatever"},
        {
            "showtime_id": str(uuid.uuid4()),
            "seats": [seat],
            "customer": {"email": "a@example.com", "phone": "+919800000001"},
        },
    )


def test_burst_sends_every_request_at_once_and_times_each(baseline_url: str) -> None:
    requests = [hold_request(baseline_url, seat_label(i)) for i in range(50)]
    requests.append(hold_request(baseline_url, "not a seat"))
    replies = asyncio.run(burst(baseline_url, requests))
    assert [r.status for r in replies] == [201] * 50 + [422]
    assert replies[0].json()["seats"] == ["A1"]
    assert all(0 < r.latency < 30 for r in replies)


@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk not installed (make bench installs it)"
)
def test_wrk_script_sends_valid_holds_and_reports_them(baseline_url: str) -> None:
    result = run_wrk(
        baseline_url + "/v1/bookings",
        "key",
        [str(uuid.uuid4())],
        SEATS_PER_ROW,
        ROWS,
        seconds=1,
        connections=4,
    )
    assert result.requests > 0
    assert result.statuses == {201: result.requests}
    assert 0 < result.p50_ms <= result.p99_ms <= result.max_ms


def test_seat_labels_match_the_lua_script_and_the_api_pattern() -> None:
    assert [seat_label(i) for i in (0, 199, 200, ROWS * SEATS_PER_ROW - 1)] == [
        "A1",
        "A200",
        "B1",
        "Z200",
    ]


def test_a_run_gets_as_many_showtimes_as_it_needs_on_one_screen(stack: Stack) -> None:
    # The full run needs several; showtimes on one screen may not overlap.
    assert len(set(create_showtimes(3))) == 3


def test_missed_goals_are_stated_plainly() -> None:
    assert percentile([5, 1, 3, 2, 4], 50) == 3
    assert percentile([float(i) for i in range(1, 101)], 99) == 99
    result = ScenarioResult("x", "1. X")
    result.rows = [
        Row("p99", "60 ms", goal=Goal("1. X", "p99", 60, 50, True, " ms")),
        Row("ratio", "0.3", goal=Goal("1. X", "ratio", 0.3, 0.25, False)),
    ]
    table = markdown_table([result])
    assert "| ≤ 50 ms | **MISSED** |" in table
    assert "| ≥ 0.25 | met |" in table


def test_mailbox_times_each_email_by_the_booking_it_mentions() -> None:
    mailbox = Mailbox().start()
    try:
        message = EmailMessage()
        message["From"], message["To"] = "a@example.com", "b@example.com"
        message["Subject"] = "Booking K7PQ2M9X confirmed"
        message.set_content("Seats A1, A2")
        before = time.time()
        with smtplib.SMTP("127.0.0.1", mailbox.port, timeout=10) as smtp:
            smtp.send_message(message)
        arrivals = mailbox.first_arrivals({"K7PQ2M9X", "ZZZZZZZZ"})
        assert list(arrivals) == ["K7PQ2M9X"]
        assert before <= arrivals["K7PQ2M9X"] <= time.time()
    finally:
        mailbox.stop()


def test_mailbox_can_answer_as_a_distant_relay() -> None:
    """With a delay (BENCH_SMTP_DELAY_MS), each email is accepted only after it: the sender
    waits as it would on a relay that far away, and the arrival is still timed on receipt."""
    mailbox = Mailbox(delay_seconds=0.3).start()
    try:
        message = EmailMessage()
        message["From"], message["To"] = "a@example.com", "b@example.com"
        message["Subject"] = "Booking R8WX4N2C confirmed: Amélie, Salle Étoile"
        message.set_content("Sièges A1, A2")
        with smtplib.SMTP("127.0.0.1", mailbox.port, timeout=10) as smtp:
            started = time.time()
            smtp.send_message(message)
            accepted = time.time()
        arrivals = mailbox.first_arrivals({"R8WX4N2C"})
        assert accepted - started >= 0.3
        assert started <= arrivals["R8WX4N2C"] <= accepted - 0.3
    finally:
        mailbox.stop()


def _notifier_sender(mailbox: Mailbox) -> SmtpSender:
    """The notifier's own SMTP client, pointed at the bench's server."""
    return SmtpSender(
        Settings(
            database_url="postgresql://unused",
            redis_url="redis://unused",
            smtp_host="127.0.0.1",
            smtp_port=mailbox.port,
        )
    )


@pytest.mark.parametrize("pipelining", [True, False])
def test_mailbox_offers_pipelining_unless_told_not_to(pipelining: bool) -> None:
    """By default the bench's relay offers PIPELINING, as Postfix does, and the notifier's
    sender pipelines its envelope to it; BENCH_SMTP_PIPELINING=0 turns the offer off."""
    mailbox = Mailbox(pipelining=pipelining).start()
    try:
        with smtplib.SMTP("127.0.0.1", mailbox.port, timeout=10) as smtp:
            smtp.ehlo()
            assert smtp.has_extn("pipelining") is pipelining
        sender = _notifier_sender(mailbox)
        message = EmailMessage()
        message["From"], message["To"] = "billetterie@example.com", "zoe@example.com"
        message["Subject"] = "Booking Q3ZT8K1V confirmée : Les Enfants du paradis"
        message.set_content("Sièges B4, B5")
        sender.send(message)
        sender.close()
        assert list(mailbox.first_arrivals({"Q3ZT8K1V"})) == ["Q3ZT8K1V"]
    finally:
        mailbox.stop()


@pytest.mark.parametrize("pipelining", [False, True])
def test_mailbox_can_sit_a_round_trip_away(pipelining: bool) -> None:
    """With a round trip (BENCH_SMTP_RTT_MS), each reply the sender waits for costs it: half
    for the greeting, one for EHLO, then four for an email sent in lock step or two for one
    pipelined. Only the lower bound is asserted: a busy machine can only add to it."""
    rtt = 0.2
    mailbox = Mailbox(pipelining=pipelining, rtt_seconds=rtt).start()
    try:
        sender = _notifier_sender(mailbox)
        message = EmailMessage()
        message["From"], message["To"] = "kassa@example.com", "jiri@example.com"
        message["Subject"] = "Booking H2VD7QXL confirmed: Kino Světozor, sál Velký"
        message.set_content("Místa C7, C8")
        started = time.monotonic()
        sender.send(message)
        elapsed = time.monotonic() - started
        sender.close()
        assert elapsed >= (1.5 + (2 if pipelining else 4)) * rtt
        assert list(mailbox.first_arrivals({"H2VD7QXL"})) == ["H2VD7QXL"]
    finally:
        mailbox.stop()


def test_every_service_accepts_the_bench_settings(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bench runs the services as production does; a new guard on production settings
    must leave the bench's own settings valid (it once refused test payments' secret)."""
    from boxoffice_settings.settings import Settings

    from bench.config import SERVICE_ENV

    for name, value in stack.env(**SERVICE_ENV).items():
        if name.startswith(("BOXOFFICE_", "DATABASE_URL", "REDIS_URL")):
            monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.env == "production"
    assert settings.test_payments_enabled


def test_cpu_of_a_process_tree_keeps_what_its_exited_children_used() -> None:
    """A PostgreSQL backend that ends mid-measurement (its client closed the connection) must
    not take its CPU out of the server's total: one run measured negative CPU per payment."""
    import subprocess
    import sys

    from bench.footprint import cpu_seconds

    burn = "import time\nwhile time.process_time() < 0.5: pass"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time\n"
            "time.sleep(1)\n"
            f"subprocess.run([sys.executable, '-c', {burn!r}])\n"
            "print('reaped', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        before = cpu_seconds(parent.pid)
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == "reaped"
        assert cpu_seconds(parent.pid) - before >= 0.4
    finally:
        parent.kill()
        parent.wait()


def test_the_bench_cluster_dates_each_commit_on_this_machines_clock(tmp_path: Path) -> None:
    """Scenario 4 times the pipeline from the payment's commit: PostgreSQL's commit timestamp
    of the transaction that wrote a row (`xmin`), which the bench turns on once."""
    postgres = Postgres(tmp_path / "postgres")
    try:
        commit_timestamps_on(postgres)
        restarted = postgres.postmaster_pid()
        commit_timestamps_on(postgres)  # already on: no second restart
        assert postgres.postmaster_pid() == restarted
        engine = create_engine(postgres.url().replace("postgresql://", "postgresql+psycopg://"))
        try:
            with engine.begin() as connection:
                connection.execute(text("CREATE TABLE ledger (id int)"))
            before = time.time()
            with engine.begin() as connection:
                connection.execute(text("INSERT INTO ledger VALUES (1)"))
                time.sleep(0.2)  # the commit comes after this, not when the statement ran
            after = time.time()
            with engine.connect() as connection:
                committed = connection.execute(
                    text("SELECT pg_xact_commit_timestamp(xmin) FROM ledger")
                ).scalar_one()
        finally:
            engine.dispose()
        assert before + 0.2 <= committed.timestamp() <= after
    finally:
        postgres.stop()
