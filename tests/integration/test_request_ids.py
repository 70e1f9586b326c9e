"""A Request-Id on every answer and in every problem body; a page for every problem type."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.integration.test_request_limits import app_with, bearer
from tests.support.stack import API_KEY

ROOT = Path(__file__).resolve().parents[2]
JSON_WITH_KEY = {**bearer(API_KEY), "Content-Type": "application/json"}


def assert_identified(response: Any) -> str:
    request_id = str(response.headers["request-id"])
    if response.headers.get("content-type") == "application/problem+json":
        assert response.json()["request_id"] == request_id
    return request_id


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/healthz", {}, 200),
        ("GET", "/v1/venues", {"headers": bearer(API_KEY)}, 200),
        ("GET", "/v1/venues", {}, 401),  # answered by the authentication middleware
        ("GET", f"/v1/bookings/{uuid.uuid4()}", {"headers": bearer(API_KEY)}, 404),
        ("PATCH", "/v1/venues", {"headers": bearer(API_KEY)}, 405),
        ("POST", "/v1/venues", {"headers": bearer(API_KEY), "json": {"name": 7}}, 422),
        ("POST", "/v1/venues", {"headers": JSON_WITH_KEY, "content": b"{"}, 400),
        ("POST", "/v1/venues", {"headers": bearer(API_KEY), "content": b"x" * (2 << 20)}, 413),
        ("GET", "/nowhere", {}, 404),
    ],
)
def test_every_answer_and_problem_carries_the_request_id(
    client_without_key: TestClient, method: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    response = client_without_key.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    uuid.UUID(assert_identified(response))


@pytest.fixture(scope="module")
def client_without_key(app_env: None) -> Any:
    with app_with() as client:
        yield client


def test_a_well_formed_caller_id_is_kept_and_a_bad_one_replaced(
    client_without_key: TestClient,
) -> None:
    mine = "checkout-7f3a:retry.2"
    for header in ("X-Request-Id", "Request-Id"):
        response = client_without_key.get("/v1/venues", headers={header: mine})
        assert response.status_code == 401
        assert assert_identified(response) == mine
    for bad in ("short", "has space in it", "x" * 200, "ünïcödé-request-id", "a\tb" * 4):
        response = client_without_key.get("/healthz", headers={"X-Request-Id": bad.encode()})
        assert response.headers["request-id"] != bad
        uuid.UUID(response.headers["request-id"])


def test_an_idempotent_replay_has_its_own_request_id(client: TestClient) -> None:
    key = str(uuid.uuid4())
    first = client.post("/v1/venues", json={"name": "Zoë"}, headers={"Idempotency-Key": key})
    again = client.post("/v1/venues", json={"name": "Zoë"}, headers={"Idempotency-Key": key})
    assert again.headers["idempotent-replayed"] == "true"
    assert first.headers["request-id"] != again.headers["request-id"]


def test_an_unexpected_error_is_a_500_problem_with_the_request_id(app_env: None) -> None:
    with app_with() as client:
        app: FastAPI = client.app  # type: ignore[assignment]

        def explode() -> None:
            raise RuntimeError("boom")

        app.add_api_route("/v1/explode", explode)

        response = client.get(
            "/v1/explode", headers={**bearer(API_KEY), "X-Request-Id": "support-ticket-1234"}
        )
    assert response.status_code == 500
    assert response.json()["type"].endswith("/internal-error")
    assert assert_identified(response) == "support-ticket-1234"


def openapi() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((ROOT / "docs" / "openapi.json").read_text())
    return document


def test_every_problem_type_has_a_page_listed_in_the_openapi_document() -> None:
    listed = {entry["type"].rsplit("/", 1)[-1]: entry for entry in openapi()["x-problem-types"]}
    pages = {p.stem for p in (ROOT / "docs" / "problems").glob("*.md")} - {"README"}
    # `http-error` is any other status the framework raises itself: a page, no fixed status.
    assert set(listed) == pages - {"http-error"}
    index = (ROOT / "docs" / "problems" / "README.md").read_text()
    for slug, entry in listed.items():
        page = ROOT / entry["documentation"]
        assert page.exists(), slug
        assert f"problems/{slug}" in page.read_text()
        assert f"({slug}.md)" in index


def test_the_openapi_document_declares_request_id_and_idempotent_replayed() -> None:
    document = openapi()
    headers = document["components"]["headers"]
    assert {"Request-Id", "Idempotent-Replayed"} <= set(headers)
    for name, response in document["components"]["responses"].items():
        assert "Request-Id" in response["headers"], name
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for code, response in operation["responses"].items():
                if "$ref" in response:
                    continue
                assert "Request-Id" in response.get("headers", {}), (method, path, code)
                replay = "Idempotent-Replayed" in response.get("headers", {})
                takes_key = any(
                    p.get("$ref", "").endswith("/Idempotency-Key")
                    for p in operation.get("parameters", [])
                )
                assert replay == (code.startswith("2") and takes_key), (method, path, code)


def test_log_lines_written_during_a_request_carry_its_request_id(
    app_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    import logging

    from boxoffice_telemetry.logs import configure_logging

    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    configure_logging("booking-api", "INFO")  # JSON lines on (captured) stdout
    try:
        with app_with() as client:
            app: FastAPI = client.app  # type: ignore[assignment]

            def noisy() -> None:
                logging.getLogger("boxoffice_booking.test").warning("about to answer")

            app.add_api_route("/v1/noisy", noisy)
            response = client.get(
                "/v1/noisy", headers={**bearer(API_KEY), "X-Request-Id": "trace-me-0042"}
            )
        assert response.status_code == 200
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    lines = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    ours = [line for line in lines if line.get("event") == "about to answer"]
    assert ours
    assert ours[0]["request_id"] == "trace-me-0042"
