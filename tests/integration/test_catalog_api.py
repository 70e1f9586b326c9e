"""Venues, screens with seat maps, showtimes: created and read through the API."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from tests.integration.conftest import make_catalog, post
from tests.support.catalog import showtime_body


def test_screen_seat_map_lists_rows_categories_and_flags(client: TestClient) -> None:
    venue = post(client, "/v1/venues", {"name": "Flags", "timezone": "Asia/Kolkata"})
    screen = post(
        client,
        f"/v1/venues/{venue['id']}/screens",
        {
            "name": "Audi 1",
            "rows": [
                {"label": "A", "seats": 4, "blocked": [1], "aisle_after": [2], "accessible": [4]},
                {"label": "B", "seats": 3, "category": "recliner"},
            ],
        },
    )
    assert screen["capacity"] == 6
    assert screen["categories"] == ["recliner", "standard"]
    row_a, row_b = screen["rows"]
    assert [s["label"] for s in row_a["seats"]] == ["A1", "A2", "A3", "A4"]
    assert row_a["seats"][0]["blocked"]
    assert row_a["seats"][1]["aisle_after"]
    assert row_a["seats"][3]["accessible"]
    assert {s["category"] for s in row_b["seats"]} == {"recliner"}
    assert client.get(f"/v1/screens/{screen['id']}").json() == screen
    listed = client.get(f"/v1/venues/{venue['id']}/screens").json()
    assert [s["id"] for s in listed["items"]] == [screen["id"]]


def test_two_showtimes_overlapping_on_one_screen_are_refused_by_the_database(
    client: TestClient,
) -> None:
    made = make_catalog(client)
    first = made["showtime"]
    starts = datetime.fromisoformat(first["starts_at"]) + timedelta(minutes=90)
    body = showtime_body(made["screen"]["id"], "Overlap", starts, {"standard": 1, "premium": 2})
    response = client.post("/v1/showtimes", json=body)
    assert response.status_code == 409, response.text
    assert response.json()["type"].endswith("/showtime-overlap")
    # Back to back is fine: the ranges are half-open.
    body["starts_at"] = first["ends_at"]
    body["ends_at"] = (datetime.fromisoformat(first["ends_at"]) + timedelta(hours=1)).isoformat()
    assert client.post("/v1/showtimes", json=body).status_code == 201


def test_showtime_needs_a_price_for_every_seat_category(client: TestClient) -> None:
    made = make_catalog(client)
    starts = datetime.now(UTC) + timedelta(days=10)
    body = showtime_body(
        made["screen"]["id"], "Unpriced", starts, {"standard": 100, "gold": 5}, timedelta(hours=1)
    )
    response = client.post("/v1/showtimes", json=body)
    assert response.status_code == 422
    problem = response.json()
    assert problem["unpriced_categories"] == ["premium"]
    assert problem["unknown_categories"] == ["gold"]


def test_showtime_reads_with_prices_and_filters_by_venue_and_local_date(
    client: TestClient,
) -> None:
    made = make_catalog(client, starts_in=timedelta(days=30))
    showtime = made["showtime"]
    assert client.get(f"/v1/showtimes/{showtime['id']}").json() == showtime
    assert {p["category"]: p["amount_minor"] for p in showtime["prices"]} == {
        "premium": 35000,
        "standard": 20000,
    }
    venue_id = made["venue"]["id"]
    day = datetime.fromisoformat(showtime["starts_at"]).date().isoformat()  # venue is UTC
    found = client.get("/v1/showtimes", params={"venue_id": venue_id, "date": day}).json()
    assert [s["id"] for s in found["items"]] == [showtime["id"]]
    other_day = client.get("/v1/showtimes", params={"venue_id": venue_id, "date": "2001-01-01"})
    assert other_day.json()["items"] == []


def test_cursor_pagination_walks_every_venue_once(client: TestClient) -> None:
    tag = uuid.uuid4().hex[:6]
    created = {post(client, "/v1/venues", {"name": f"Page {tag} {i}"})["id"] for i in range(7)}
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/venues", params=params).json()
        assert len(page["items"]) <= 3
        seen += [v["id"] for v in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert created <= set(seen)
    assert len(seen) == len(set(seen))


def test_a_forged_cursor_is_a_422_problem(client: TestClient) -> None:
    response = client.get("/v1/venues", params={"cursor": "bm90IGEgY3Vyc29y"})
    assert response.status_code == 422
    assert response.json()["type"].endswith("/invalid-cursor")


def test_unknown_time_zone_is_rejected_with_a_clear_message(client: TestClient) -> None:
    response = client.post("/v1/venues", json={"name": "X", "timezone": "Mars/Olympus"})
    assert response.status_code == 422
    assert "unknown IANA time zone" in response.json()["detail"]


def test_the_demo_seed_is_made_once_and_found_again(client: TestClient) -> None:
    from boxoffice_booking.seed import seed_demo
    from boxoffice_db.engine import session_scope

    with session_scope() as session:
        first = seed_demo(session)
    with session_scope() as session:
        assert seed_demo(session) == first
    seat_map = client.get(f"/v1/showtimes/{first}/seats")
    assert seat_map.status_code == 200
    assert len(seat_map.json()["seats"]) == 8 * 12
