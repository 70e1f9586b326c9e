"""The client's models describe exactly what docs/openapi.json says the API returns."""

from __future__ import annotations

import json
from typing import Any

import pytest
from boxoffice_client import models
from boxoffice_client.errors import Problem
from boxoffice_codegen.paths import OPENAPI_PATH
from pydantic import BaseModel

# client model -> the schema of the response body it reads
MODEL_SCHEMAS: dict[type[BaseModel], str] = {
    models.Booking: "BookingPublic",
    models.BookingSeat: "BookingSeatPublic",
    models.Customer: "Customer",
    models.Payment: "PaymentPublic",
    models.PaymentSummary: "PaymentSummary",
    models.Venue: "VenuePublic",
    models.Screen: "ScreenPublic",
    models.ScreenSummary: "ScreenSummary",
    models.ScreenRow: "RowPublic",
    models.ScreenSeat: "SeatPublic",
    models.Showtime: "ShowtimePublic",
    models.Price: "PricePublic",
    models.SeatMap: "SeatMapPublic",
    models.SeatState: "SeatStatePublic",
    models.Health: "Health",
    models.Task: "TaskPublic",
    models.TaskProgress: "TaskProgress",
    models.TaskList: "TaskList",
    models.TaskRuntime: "RuntimeByName",
    models.QueueBacklog: "QueueBacklog",
    models.TaskStats: "TaskStatsPublic",
}


@pytest.fixture(scope="module")
def schemas() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(OPENAPI_PATH.read_text())
    return document["components"]["schemas"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("model", list(MODEL_SCHEMAS), ids=lambda m: m.__name__)
def test_a_client_model_has_every_field_of_its_schema_and_no_other(
    model: type[BaseModel], schemas: dict[str, Any]
) -> None:
    schema = schemas[MODEL_SCHEMAS[model]]
    assert set(model.model_fields) == set(schema["properties"])
    for name in schema.get("required", []):
        # A field the API always sends may still be optional in the client; never the reverse.
        assert name in model.model_fields


def test_the_problem_model_reads_the_problem_schema(schemas: dict[str, Any]) -> None:
    assert set(Problem.model_fields) == set(schemas["Problem"]["required"])


def response_body_schemas(document: dict[str, Any]) -> set[str]:
    """Names of the schemas the 2xx JSON responses use (a list's or a page's items too)."""
    schemas = document["components"]["schemas"]
    read: set[str] = set()
    for path, item in document["paths"].items():
        for operation in item.values():
            if path.startswith("/v1/") and not operation["security"]:
                continue  # called by payment providers, not by API clients
            for status, response in operation.get("responses", {}).items():
                schema = response.get("content", {}).get("application/json", {}).get("schema", {})
                if not status.startswith("2"):
                    continue
                schema = schema.get("items", schema)
                name = schema.get("$ref", "").rsplit("/", 1)[-1]
                if name.startswith("Page_"):
                    assert set(schemas[name]["properties"]) == {"items", "next_cursor"}
                    name = schemas[name]["properties"]["items"]["items"]["$ref"].rsplit("/", 1)[-1]
                if name:
                    read.add(name)
    return read


def test_every_response_body_schema_has_a_client_model() -> None:
    document: dict[str, Any] = json.loads(OPENAPI_PATH.read_text())
    assert response_body_schemas(document) <= set(MODEL_SCHEMAS.values())
