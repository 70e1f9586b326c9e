"""Idempotency-Key on POST, per-key rate limits, and the API-key admin CLI."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from boxoffice_booking.deps import settings_dep
from boxoffice_booking.idempotency import Claim, ClaimResult, claim_key
from boxoffice_db.aio import libpq_url
from boxoffice_settings import Settings, get_settings
from fastapi.testclient import TestClient
from psycopg.rows import namedtuple_row

from tests.integration.conftest import hold, make_catalog
from tests.support.stack import API_KEY, Stack


def test_the_same_key_and_body_replays_the_first_answer(client: TestClient) -> None:
    showtime = make_catalog(client)["showtime"]
    key = str(uuid.uuid4())
    body = {"showtime_id": showtime["id"], "seats": ["A1"], "customer": {"email": "i@example.com"}}
    first = client.post("/v1/bookings", json=body, headers={"Idempotency-Key": key})
    again = client.post("/v1/bookings", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    listed = client.get("/v1/bookings", params={"customer_email": "i@example.com"}).json()
    assert sum(b["showtime_id"] == showtime["id"] for b in listed["items"]) == 1


def test_the_same_key_with_another_body_is_a_422(client: TestClient) -> None:
    key = str(uuid.uuid4())
    assert client.post("/v1/venues", json={"name": "One"}, headers={"Idempotency-Key": key})
    response = client.post("/v1/venues", json={"name": "Two"}, headers={"Idempotency-Key": key})
    assert response.status_code == 422
    assert response.json()["type"].endswith("/idempotency-key-reused")


def test_a_duplicate_while_the_first_is_running_is_a_409_with_retry_after(
    client: TestClient,
) -> None:
    key = str(uuid.uuid4())
    body = b'{"name": "Concurrent"}'
    # The first request has claimed the key and is still running (as another process would).
    principal = hashlib.sha256(API_KEY.encode()).hexdigest()
    request_hash = hashlib.sha256(b"\0".join([b"POST", b"/v1/venues", b"", body])).hexdigest()

    async def claim() -> ClaimResult:
        settings = get_settings()
        async with await psycopg.AsyncConnection.connect(
            libpq_url(settings.database_url), autocommit=True, row_factory=namedtuple_row
        ) as conn:
            return await claim_key(conn, principal, key, "POST", "/v1/venues", request_hash, 3600)

    claimed = asyncio.run(claim())
    assert claimed.claim is Claim.CLAIMED
    response = client.post(
        "/v1/venues",
        content=body,
        headers={"Idempotency-Key": key, "Content-Type": "application/json"},
    )
    assert response.status_code == 409
    assert response.headers["retry-after"] == "1"
    assert response.json()["type"].endswith("/idempotency-key-in-progress")


def test_conflicts_are_not_stored_so_the_key_can_be_retried(client: TestClient) -> None:
    showtime = make_catalog(client)["showtime"]
    blocker = hold(client, showtime["id"], ["B3"]).json()
    key = str(uuid.uuid4())
    body = {"showtime_id": showtime["id"], "seats": ["B3"], "customer": {"email": "r@example.com"}}
    assert client.post("/v1/bookings", json=body, headers={"Idempotency-Key": key}).status_code == (
        409
    )
    client.post(f"/v1/bookings/{blocker['id']}/cancel")
    retried = client.post("/v1/bookings", json=body, headers={"Idempotency-Key": key})
    assert retried.status_code == 201, retried.text
    assert "idempotent-replayed" not in retried.headers


def test_keys_of_two_clients_do_not_collide(client: TestClient) -> None:
    from boxoffice_booking.auth import create_api_key
    from boxoffice_db.engine import session_scope

    with session_scope() as session:
        other = create_api_key(session, "other", ["catalog:write", "bookings:read"])
    key = str(uuid.uuid4())
    mine = client.post("/v1/venues", json={"name": "Mine"}, headers={"Idempotency-Key": key})
    theirs = client.post(
        "/v1/venues",
        json={"name": "Theirs"},
        headers={"Idempotency-Key": key, "Authorization": f"Bearer {other}"},
    )
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]


def test_a_malformed_idempotency_key_is_a_400(client: TestClient) -> None:
    response = client.post("/v1/venues", json={"name": "X"}, headers={"Idempotency-Key": "x" * 300})
    assert response.status_code == 400
    assert response.json()["type"].endswith("/invalid-idempotency-key")


@pytest.fixture
def limited(client: TestClient) -> Iterator[TestClient]:
    """The same app with a budget of 3 requests per minute per key."""
    app = client.app
    settings = get_settings().model_copy(update={"rate_limit_requests": 3})

    def limited_settings() -> Settings:
        return settings

    app.dependency_overrides[settings_dep] = limited_settings  # type: ignore[attr-defined]
    yield client
    app.dependency_overrides.clear()  # type: ignore[attr-defined]


def test_a_key_over_its_budget_gets_429_with_retry_after(limited: TestClient) -> None:
    from boxoffice_booking.auth import create_api_key
    from boxoffice_db.engine import session_scope

    with session_scope() as session:
        key = create_api_key(session, "limited", ["bookings:read"])
        fresh = create_api_key(session, "fresh", ["bookings:read"])
    headers = {"Authorization": f"Bearer {key}"}
    responses = [limited.get("/v1/venues", headers=headers) for _ in range(8)]
    assert [r.status_code for r in responses[:3]] == [200, 200, 200]
    # Fixed windows: even if one closes meanwhile, 8 requests overrun a budget of 3.
    response = next(r for r in responses if r.status_code == 429)
    assert 1 <= int(response.headers["retry-after"]) <= 61
    assert response.json()["type"].endswith("/rate-limited")
    # Another key has its own budget.
    assert limited.get("/v1/venues", headers={"Authorization": f"Bearer {fresh}"}).status_code == (
        200
    )


def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "boxoffice_booking.cli", *args],
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_admin_cli_creates_lists_and_revokes_scoped_keys(
    client: TestClient, stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    from boxoffice_booking.auth import forget_cached_keys
    from boxoffice_booking.cli import main

    name = f"reader-{uuid.uuid4().hex[:6]}"
    created = cli(stack, "api-keys", "create", "--name", name, "--scope", "bookings:read")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("bo_")
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/v1/venues", headers=headers).status_code == 200
    refused = client.post("/v1/venues", json={"name": "No"}, headers=headers)
    assert refused.status_code == 403
    assert refused.json()["required_scope"] == "catalog:write"

    listed = cli(stack, "api-keys", "list")
    [line] = [line for line in listed.stdout.splitlines() if line.endswith(name)]
    assert key not in listed.stdout  # only hashes are kept
    key_id = line.split()[0]
    assert cli(stack, "api-keys", "revoke", key_id).returncode == 0
    forget_cached_keys()  # the API caches a key's scopes for a few seconds
    assert client.get("/v1/venues", headers=headers).status_code == 401

    # The rest in-process (each CLI process start costs seconds on a busy machine).
    capsys.readouterr()
    assert main(["api-keys", "revoke", key_id]) == 1
    assert main(["api-keys", "list"]) == 0
    assert name not in capsys.readouterr().out
    assert main(["api-keys", "list", "--all", "--json"]) == 0
    assert f'"name": "{name}"' in capsys.readouterr().out
