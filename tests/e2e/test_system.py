"""Every process started for real: API, relay, notifier, reaper, scheduler, an SMTP server."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from boxoffice_devstack.servers import free_port

from tests.support.catalog import make_showtime
from tests.support.processes import ServiceProcess, wait_for_http, wait_until
from tests.support.smtp import SmtpServer
from tests.support.stack import API_KEY, Stack

pytestmark = pytest.mark.e2e

HOLD_TTL_SECONDS = 3


@dataclass
class System:
    api: httpx.Client
    smtp: SmtpServer
    showtime_id: uuid.UUID
    processes: dict[str, ServiceProcess]


@pytest.fixture(scope="module")
def system(stack: Stack) -> Iterator[System]:
    smtp = SmtpServer().start()
    port = free_port()
    env = stack.system_env(
        port,
        smtp.port,
        BOXOFFICE_HOLD_TTL_SECONDS=str(HOLD_TTL_SECONDS),
        BOXOFFICE_REAPER_SWEEP_INTERVAL_SECONDS="0.25",
    )
    logs = stack.var / "e2e-logs"
    processes = {
        name: ServiceProcess(name, module, env, logs).start()
        for name, module in {
            "api": "boxoffice_booking.main",
            "relay": "boxoffice_booking.relay",
            "notifier": "boxoffice_notifier.main",
            "reaper": "boxoffice_reaper.main",
            "scheduler": "boxoffice_scheduler.main",
        }.items()
    }
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(base + "/readyz", timeout=240)
        processes["notifier"].wait_for_log("ready.", timeout=240)
        processes["reaper"].wait_for_log("ready.", timeout=240)
        client = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10
        )
        yield System(client, smtp, make_showtime(), processes)
        client.close()
    finally:
        for process in processes.values():
            process.stop()
        smtp.stop()


def hold(system: System, seats: list[str], email: str = "ada@example.com") -> httpx.Response:
    return system.api.post(
        "/v1/bookings",
        json={
            "showtime_id": str(system.showtime_id),
            "seats": seats,
            "customer": {"email": email, "phone": "+919800000001"},
        },
    )


def seat_status(system: System, label: str) -> str:
    seats = system.api.get(f"/v1/showtimes/{system.showtime_id}/seats").json()["seats"]
    return str(next(s["status"] for s in seats if s["label"] == label))


def test_paid_booking_sends_exactly_one_confirmation_email(system: System) -> None:
    email = f"pay-{uuid.uuid4().hex[:8]}@example.com"
    created = hold(system, ["B1", "B2"], email)
    assert created.status_code == 201, created.text
    booking = created.json()
    assert booking["status"] == "PENDING"

    paid = system.api.post(
        f"/v1/bookings/{booking['id']}/payments", json={"provider": "test", "outcome": "succeeded"}
    )
    assert paid.status_code == 201, paid.text
    assert paid.json()["booking"]["status"] == "CONFIRMED"
    assert seat_status(system, "B1") == "sold"

    def mails() -> list[object]:
        return [m for m in system.smtp.messages() if m["To"] == email]

    wait_until(lambda: len(mails()) >= 1, 30, "the confirmation email")
    # Give a duplicate every chance to show up before counting.
    threading.Event().wait(2)
    [message] = system.smtp.messages() and mails()
    assert booking["reference"] in message["Subject"]  # type: ignore[index]
    # Multipart: text and HTML alternatives, and the showtime as an .ics attachment.
    [text] = [part for part in message.walk() if part.get_content_type() == "text/plain"]  # type: ignore[attr-defined]
    body = text.get_payload(decode=True).decode()
    assert "B1, B2" in body
    assert "Test Film" in body


def test_unpaid_hold_expires_and_seats_return_to_sale(system: System) -> None:
    created = hold(system, ["C5"])
    assert created.status_code == 201, created.text
    booking_id = created.json()["id"]
    assert seat_status(system, "C5") == "held"

    def status() -> str:
        return str(system.api.get(f"/v1/bookings/{booking_id}").json()["status"])

    wait_until(lambda: status() == "EXPIRED", HOLD_TTL_SECONDS + 20, "the reaper to expire it")
    assert seat_status(system, "C5") == "available"
    again = hold(system, ["C5"], "next@example.com")
    assert again.status_code == 201, again.text


def test_two_holds_on_the_same_seat_one_wins_one_gets_409(system: System) -> None:
    barrier = threading.Barrier(2)
    results: list[httpx.Response] = []

    def attempt(email: str) -> None:
        barrier.wait()
        results.append(hold(system, ["D7"], email))

    threads = [threading.Thread(target=attempt, args=(f"r{i}@example.com",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.status_code for r in results)
    assert codes == [201, 409], [r.text for r in results]
    loser = next(r for r in results if r.status_code == 409)
    assert loser.headers["content-type"] == "application/problem+json"
    problem = loser.json()
    assert problem["type"].endswith("/seats-unavailable")
    assert problem["seats"] == ["D7"]


@pytest.mark.parametrize(
    ("body", "status", "problem_type"),
    [
        ({"showtime_id": str(uuid.uuid4()), "seats": ["A2"]}, 404, "not-found"),
        ({"seats": ["Z99"]}, 422, "invalid-seats"),
        ({"seats": ["A1"]}, 422, "invalid-seats"),
        ({"seats": []}, 422, "validation-error"),
        ({"seats": ["A2", "A2"]}, 422, "invalid-seats"),
        ({"seats": ["not a seat"]}, 422, "validation-error"),
        ({"customer": {"email": "nope"}}, 422, "validation-error"),
    ],
)
def test_bad_hold_requests_get_a_problem_not_a_5xx(
    system: System, body: dict[str, object], status: int, problem_type: str
) -> None:
    request = {
        "showtime_id": str(system.showtime_id),
        "seats": ["A3"],
        "customer": {"email": "bad@example.com"},
        **body,
    }
    response = system.api.post("/v1/bookings", json=request)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/" + problem_type)


def test_malformed_json_is_a_400_problem(system: System) -> None:
    response = system.api.post(
        "/v1/bookings", content=b'{"showtime_id": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["type"].endswith("/malformed-json")


def test_missing_api_key_is_a_401_problem(system: System) -> None:
    response = httpx.get(str(system.api.base_url) + f"/v1/showtimes/{system.showtime_id}/seats")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
