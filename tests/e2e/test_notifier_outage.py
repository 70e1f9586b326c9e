"""SMTP down for a while: bookings keep confirming, and the emails arrive once it is back."""

from __future__ import annotations

import threading
import uuid

import httpx
import pytest
from boxoffice_db.engine import session_scope
from boxoffice_db.models import Delivery
from boxoffice_devstack.servers import free_port
from sqlalchemy import select

from tests.support.catalog import make_showtime
from tests.support.processes import ServiceProcess, wait_for_http, wait_until
from tests.support.smtp import SmtpServer
from tests.support.stack import API_KEY, Stack

pytestmark = pytest.mark.e2e


def test_bookings_confirm_while_smtp_is_down_and_emails_follow_its_return(stack: Stack) -> None:
    smtp_port = free_port()  # nothing listens here yet: the SMTP server is down
    api_port = free_port()
    env = stack.env(
        BOXOFFICE_API_PORT=str(api_port),
        BOXOFFICE_SMTP_HOST="127.0.0.1",
        BOXOFFICE_SMTP_PORT=str(smtp_port),
        BOXOFFICE_SMTP_TIMEOUT_SECONDS="2",
        BOXOFFICE_NOTIFIER_RETRY_BACKOFF_SECONDS="0.5",
        BOXOFFICE_NOTIFIER_RETRY_BACKOFF_MAX_SECONDS="2",
    )
    logs = stack.var / "outage-logs"
    processes = [
        ServiceProcess("api", "boxoffice_booking.main", env, logs).start(),
        ServiceProcess("relay", "boxoffice_booking.relay", env, logs).start(),
        ServiceProcess("notifier", "boxoffice_notifier.main", env, logs, ("email",)).start(),
    ]
    smtp: SmtpServer | None = None
    base = f"http://127.0.0.1:{api_port}"
    try:
        wait_for_http(base + "/readyz", timeout=120)
        processes[2].wait_for_log("ready.", timeout=120)
        api = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10
        )
        showtime = make_showtime()
        customers = [f"outage-{uuid.uuid4().hex[:8]}@example.com" for _ in range(4)]
        references = []
        for n, email in enumerate(customers):
            held = api.post(
                "/v1/bookings",
                json={
                    "showtime_id": str(showtime),
                    "seats": [f"B{n + 2}"],
                    "customer": {"email": email},
                },
            )
            assert held.status_code == 201, held.text
            paid = api.post(
                f"/v1/bookings/{held.json()['id']}/payments",
                json={"provider": "test", "outcome": "succeeded"},
            )
            assert paid.status_code == 201, paid.text
            assert paid.json()["booking"]["status"] == "CONFIRMED"
            references.append(held.json()["reference"])

        def retrying() -> int:
            with session_scope() as session:
                rows = session.scalars(
                    select(Delivery).where(
                        Delivery.kind == "booking_confirmed",
                        Delivery.attempts > 0,
                        Delivery.status == "retrying",
                    )
                ).all()
            return len(rows)

        # The notifier tried, failed, and keeps the emails for later.
        wait_until(lambda: retrying() >= len(customers), 30, "every email to be waiting to retry")
        threading.Event().wait(2)

        smtp = SmtpServer(smtp_port).start()

        def delivered() -> list[str]:
            assert smtp is not None
            return [str(m["To"]) for m in smtp.messages() if str(m["To"]) in customers]

        wait_until(lambda: sorted(delivered()) == sorted(customers), 60, "the delayed emails")
        threading.Event().wait(2)
        assert sorted(delivered()) == sorted(customers)  # one each, none twice
        for process in processes:
            process.assert_running()
        api.close()
    finally:
        for process in processes:
            process.stop()
        if smtp is not None:
            smtp.stop()
