"""The seat map's answer is exactly `SeatMapPublic`'s serialisation, written without a model
per seat (a stadium's map has thousands)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from boxoffice_booking.deps import get_redis
from boxoffice_booking.schemas import SeatMapPublic
from fastapi.testclient import TestClient

from tests.integration.conftest import hold, make_catalog, post
from tests.support.catalog import showtime_body


def _seat_map_bytes(client: TestClient, showtime_id: str) -> bytes:
    response = client.get(f"/v1/showtimes/{showtime_id}/seats")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: bytes = response.content
    return body


def test_seat_map_bytes_are_the_models_own_serialisation_cold_and_warm(
    client: TestClient,
) -> None:
    screen = make_catalog(client, blocked=(2,))["screen"]
    starts = datetime.now(UTC) + timedelta(days=3)
    showtime = post(
        client,
        "/v1/showtimes",
        showtime_body(
            screen["id"],
            'Amélie — «Le Fabuleux Destin» "d\'Amélie" 🎬',
            starts,
            {"standard": 20000, "premium": 35000},
        ),
    )
    held = hold(client, showtime["id"], ["B1"], email="zoë@example.com")
    assert held.status_code == 201, held.text
    sold = hold(client, showtime["id"], ["C4"]).json()
    paid = client.post(
        f"/v1/bookings/{sold['id']}/payments", json={"provider": "test", "outcome": "succeeded"}
    )
    assert paid.status_code == 201, paid.text

    for cache in ("cold", "warm"):
        if cache == "cold":
            for key in get_redis().scan_iter(f"boxoffice:seats:{showtime['id']}*"):
                get_redis().delete(key)
        body = _seat_map_bytes(client, showtime["id"])
        model = SeatMapPublic.model_validate_json(body)
        assert body == model.model_dump_json().encode(), cache
        status = {seat.label: seat.status for seat in model.seats}
        assert status["B1"] == "held", cache
        assert status["C4"] == "sold", cache
        assert status["A2"] == "blocked", cache
        assert status["A1"] == "available", cache
        assert len(model.seats) == 24
        assert model.film_title.startswith("Amélie")
