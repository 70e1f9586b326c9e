"""docs/openapi.json: fresh, valid OpenAPI 3.1, complete for every operation, honest examples."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from boxoffice_codegen.openapi_export import render_openapi
from boxoffice_codegen.paths import OPENAPI_PATH
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

PROBLEM_JSON = "application/problem+json"
HTTP_METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(OPENAPI_PATH.read_text())
    return loaded


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def test_the_committed_document_is_what_the_app_serves() -> None:
    committed = OPENAPI_PATH.read_text()
    fresh = render_openapi()
    diff = "".join(
        difflib.unified_diff(
            committed.splitlines(True), fresh.splitlines(True), "docs/openapi.json", "app", n=2
        )
    )
    assert committed == fresh, f"docs/openapi.json is stale; run `make openapi`:\n{diff[:6000]}"


def test_it_is_a_valid_openapi_3_1_document(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"].startswith("3.1")


def test_every_operation_documents_its_errors_as_problem_json(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        responses = operation["responses"]
        name = f"{method.upper()} {path}"
        assert "500" in responses, name
        for status, response in responses.items():
            if status.startswith(("4", "5")) and not path.startswith(("/healthz", "/readyz")):
                content = resolve(document, response)["content"]
                assert list(content) == [PROBLEM_JSON], f"{name} {status}"
                assert content[PROBLEM_JSON]["schema"] == {"$ref": "#/components/schemas/Problem"}


# Operations that take no API key: probes, and provider webhooks (signed instead).
PUBLIC_OPERATIONS = {"read_health", "read_readiness", "receive_webhook"}


def test_operations_with_an_api_key_name_the_scheme_and_its_failures(
    document: dict[str, Any],
) -> None:
    secured = 0
    for path, _, operation in operations(document):
        if operation["operationId"] in PUBLIC_OPERATIONS:
            assert operation["security"] == [], path
            continue
        secured += 1
        assert operation["security"] == [{"apiKey": []}], path
        assert {"401", "403", "429"} <= operation["responses"].keys(), path
        parameters = operation.get("parameters", [])
        assert not any(p.get("name", "").lower() == "authorization" for p in parameters), path
    assert secured >= 4
    assert document["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"


def test_every_post_takes_an_idempotency_key_and_documents_its_conflicts(
    document: dict[str, Any],
) -> None:
    posts = [(p, op) for p, m, op in operations(document) if m == "post" and op["security"]]
    assert posts
    for path, operation in posts:
        assert {"$ref": "#/components/parameters/Idempotency-Key"} in operation["parameters"], path
        assert {"409", "422"} <= operation["responses"].keys(), path
    conflict = document["components"]["responses"]["Conflict"]
    assert "Retry-After" in conflict["headers"]


def test_a_created_resource_links_to_what_can_be_done_with_it(document: dict[str, Any]) -> None:
    created = document["paths"]["/v1/bookings"]["post"]["responses"]["201"]
    assert {"read_booking", "create_payment", "cancel_booking"} <= created["links"].keys()
    assert "Location" in created["headers"]


def test_every_problem_type_has_an_example(document: dict[str, Any]) -> None:
    from boxoffice_booking.problems import problem_types

    documented = {
        example["value"]["type"]
        for response in document["components"]["responses"].values()
        for example in response["content"][PROBLEM_JSON].get("examples", {}).values()
    }
    for status, slug, _ in problem_types():
        if status != 405:  # answered to methods a path lacks, so on no documented operation
            assert f"https://boxoffice.dev/problems/{slug}" in documented, slug


def examples(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """(where, schema, example) for every example in the document."""
    for name, schema in document["components"]["schemas"].items():
        for i, example in enumerate(schema.get("examples", [])):
            yield f"schemas.{name}[{i}]", schema, example
    media_holders = [
        (f"{m.upper()} {p} body", op["requestBody"])
        for p, m, op in operations(document)
        if "requestBody" in op
    ]
    media_holders += [
        (f"responses.{name}", response)
        for name, response in document["components"]["responses"].items()
    ]
    for where, holder in media_holders:
        for media in holder.get("content", {}).values():
            for key, example in media.get("examples", {}).items():
                yield f"{where}.{key}", media["schema"], example["value"]


def test_every_example_is_valid_against_its_schema(document: dict[str, Any]) -> None:
    registry: Registry[Any] = Registry().with_resource(
        "urn:openapi", Resource.from_contents(document, default_specification=DRAFT202012)
    )
    checked = 0
    for where, schema, example in examples(document):
        # $refs resolve against the whole document, registered under urn:openapi.
        text = json.dumps(schema).replace('"#/components', '"urn:openapi#/components')
        anchored = json.loads(text)
        errors = list(OAS31Validator(anchored, registry=registry).iter_errors(example))
        assert not errors, f"{where}: {errors[0].message}"
        checked += 1
    assert checked >= 10
