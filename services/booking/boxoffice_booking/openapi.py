"""The OpenAPI document, completed globally from what every route declares.

Routes declare their success bodies and the error statuses particular to them
(`problems.problem_responses`). This module adds, to every operation, what follows from its
shape: the bearer security scheme where an API key is needed (`auth.requires_api_key`), the
problem+json responses it can produce (401/403/429 with a key, 404 wherever an id can name
nothing, 400/408/413/422 with a body or parameters, 409 and the `Idempotency-Key` header on every
POST that takes an API key, 500, 503), the `Request-Id`, `Idempotent-Replayed`, `Retry-After`
and `Location` headers, examples, the problem types with their pages (`docs/problems/`), and
links from a created resource to what can be done with it. Doing it here rather than per route
keeps the document complete as routes are added.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from boxoffice_booking.auth import requires_api_key
from boxoffice_booking.openapi_examples import (
    PROBLEM_EXTENSION_EXAMPLES,
    REQUEST_EXAMPLES,
    SCHEMA_EXAMPLES,
)
from boxoffice_booking.problems import PROBLEM_BASE, PROBLEM_JSON, problem_types

SECURITY_SCHEME = "apiKey"
IDEMPOTENCY_HEADER = "Idempotency-Key"

DESCRIPTION = """\
Hold seats for a showtime, pay, and get a confirmation.

**Authentication.** Send `Authorization: Bearer <api key>`. Keys carry scopes
(`bookings:read`, `bookings:read:all`, `bookings:write`, `catalog:write`, `admin`); a missing
or unknown key is a `401`, a key without the scope an operation needs is a `403`.

**Ownership.** Each key belongs to a client, whose keys share its bookings. Another client's
booking answers `404`, as a missing one does. `bookings:read:all` reads every client's
bookings; `admin` also pays for and cancels them.

**Idempotency.** Every `POST` accepts an `Idempotency-Key` header. The first response is
stored and replayed for a retry with the same key and body; the same key with another body is
a `422`; a duplicate sent while the first is still running is a `409` with `Retry-After`.
Clients should send one key per logical operation and retry network errors, `409`, `429` and
`503` with it, honouring `Retry-After`.

**Errors.** Every error is an RFC 9457 `application/problem+json` body whose `type` is a
stable URI under `https://boxoffice.dev/problems/`; branch on `type`, not on `title` or
`detail`. No input makes the API answer `5xx`; a `503` means a dependency (PostgreSQL or Redis)
is unavailable and the request can be retried. Each type has a page under `docs/problems/`;
`x-problem-types` lists them all.

**Request ids.** Every answer has a `Request-Id` header (yours, from `Request-Id` or
`X-Request-Id`, when well formed); problem bodies repeat it as `request_id`, with the
`trace_id` when the request was traced. Quote them to support.

**Limits.** A body larger than the operation takes is a `413` (1 MiB by default), refused
before it is read; a body that stops arriving for 10 seconds is a `408`. Requests without a
valid API key are answered `401` before their body is looked at, and too many of them from
one address are a `429` `authentication-throttled`.
"""

TAGS = [
    {"name": "bookings", "description": "Holds, payments and cancellations."},
    {"name": "showtimes", "description": "Showtimes and their seat maps."},
    {"name": "catalog", "description": "Venues, their screens and the screens' seat maps."},
    {"name": "payments", "description": "Payment providers' webhooks (signed, no API key)."},
    {"name": "tasks", "description": "Background task status."},
    {"name": "health", "description": "Liveness and readiness probes (no API key)."},
]

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details. Extension members depend on the `type`.",
    "type": "object",
    "required": ["type", "title", "status", "detail", "instance"],
    "properties": {
        "type": {
            "type": "string",
            "format": "uri",
            "description": f"A stable URI naming the problem, under {PROBLEM_BASE}.",
        },
        "title": {"type": "string", "description": "A short summary of the problem type."},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "What went wrong with this request."},
        "instance": {"type": "string", "description": "The path of the request."},
        "errors": {
            "type": "array",
            "description": "For validation problems: each invalid input.",
            "items": {"$ref": "#/components/schemas/ProblemError"},
        },
        "seats": {
            "type": "array",
            "description": "For seat problems: the seats concerned.",
            "items": {"type": "string"},
        },
        "request_id": {
            "type": "string",
            "description": "The answer's `Request-Id`: quote it to support.",
        },
        "trace_id": {
            "type": "string",
            "description": "The W3C trace id of the request, when it was traced.",
        },
    },
    "additionalProperties": True,
}

PROBLEM_ERROR_SCHEMA: dict[str, Any] = {
    "title": "ProblemError",
    "type": "object",
    "required": ["loc", "msg", "type"],
    "properties": {
        "loc": {
            "type": "array",
            "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "description": 'Where the invalid input is, e.g. ["body", "seats", 0].',
        },
        "msg": {"type": "string"},
        "type": {"type": "string"},
    },
}

HEADERS: dict[str, Any] = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "Location": {
        "description": "The path of the created resource.",
        "schema": {"type": "string"},
    },
    "WWW-Authenticate": {
        "description": "The authentication scheme to use: `Bearer`.",
        "schema": {"type": "string"},
    },
    "Request-Id": {
        "description": (
            "This request's id: the caller's `Request-Id` or `X-Request-Id` when well formed "
            "(8 to 128 of `A-Za-z0-9._:-`), else a new UUID. Also `request_id` in a problem "
            "body and on the API's log lines; quote it to support."
        ),
        "schema": {"type": "string"},
    },
    "Idempotent-Replayed": {
        "description": (
            "`true` when this is the stored answer to an earlier request with the same "
            "Idempotency-Key and body (the operation was not run again)."
        ),
        "schema": {"type": "string", "enum": ["true"]},
    },
}
DOCS_PROBLEMS = "docs/problems/"

# status -> (component name, description, response headers)
PROBLEM_RESPONSES: dict[int, tuple[str, str, tuple[str, ...]]] = {
    400: ("BadRequest", "The body is not valid JSON.", ()),
    401: ("Unauthorized", "The API key is missing, unknown or revoked.", ("WWW-Authenticate",)),
    403: ("Forbidden", "The API key lacks the scope this operation needs.", ()),
    404: ("NotFound", "The resource does not exist.", ()),
    409: (
        "Conflict",
        "The request conflicts with the current state (seats taken, booking state), or a "
        "request with the same Idempotency-Key is still in progress (then with Retry-After).",
        ("Retry-After",),
    ),
    408: (
        "RequestTimeout",
        "The request body stopped arriving; nothing was done and the connection is closed.",
        (),
    ),
    413: (
        "ContentTooLarge",
        "The request body is larger than this operation takes (by Content-Length or as sent).",
        (),
    ),
    422: (
        "UnprocessableContent",
        "The request is well-formed but invalid, or its Idempotency-Key was used with another "
        "body.",
        (),
    ),
    429: (
        "TooManyRequests",
        "The API key sent too many requests, or this address sent too many without a valid "
        "API key.",
        ("Retry-After",),
    ),
    500: ("InternalError", "An unexpected error; it is logged and never expected.", ()),
    503: (
        "ServiceUnavailable",
        "A dependency (PostgreSQL or Redis) is unavailable; retry later.",
        ("Retry-After",),
    ),
}

HTTP_METHODS = ("get", "put", "post", "delete", "patch")

# What the idempotency middleware enforces and answers, documented when the app installs it:
# 1 to 255 printable ASCII characters, no space at either end (HTTP strips it).
IDEMPOTENCY_KEY_PATTERN = "^[\\x21-\\x7E]([\\x20-\\x7E]{0,253}[\\x21-\\x7E])?$"


def validates_idempotency_keys(app: FastAPI) -> bool:
    return any(
        getattr(middleware.cls, "__name__", "") == "IdempotencyMiddleware"
        for middleware in app.user_middleware
    )


def problem_examples(status: int) -> dict[str, Any]:
    """One example per problem type with this status, keyed by its slug."""
    examples: dict[str, Any] = {}
    for type_status, slug, title in problem_types():
        if type_status != status:
            continue
        value = {
            "type": PROBLEM_BASE + slug,
            "title": title,
            "status": status,
            "detail": f"{title}.",
            "instance": "/v1/bookings",
            **PROBLEM_EXTENSION_EXAMPLES.get(slug, {}),
            "request_id": "3f6c1a52-6b0e-4d0c-9b51-2f8e0f1c7a11",
        }
        examples[slug] = {"summary": title, "value": value}
    return examples


def problem_response_component(status: int) -> dict[str, Any]:
    """The reusable OpenAPI response (`components.responses`) for a problem status."""
    _, description, headers = PROBLEM_RESPONSES[status]
    media: dict[str, Any] = {"schema": {"$ref": "#/components/schemas/Problem"}}
    examples = problem_examples(status)
    if examples:
        media["examples"] = examples
    response: dict[str, Any] = {"description": description, "content": {PROBLEM_JSON: media}}
    response["headers"] = {
        name: {"$ref": f"#/components/headers/{name}"} for name in (*headers, "Request-Id")
    }
    return response


def problem_type_list() -> list[dict[str, Any]]:
    """`x-problem-types`: every problem type with its status, title and page."""
    return [
        {
            "type": PROBLEM_BASE + slug,
            "status": status,
            "title": title,
            "documentation": f"{DOCS_PROBLEMS}{slug}.md",
        }
        for status, slug, title in problem_types()
    ]


def _is_header(parameter: dict[str, Any], name: str) -> bool:
    return parameter.get("in") == "header" and parameter["name"].lower() == name.lower()


def _refers_to_resources(node: Any, schemas: dict[str, Any], seen: set[str]) -> bool:
    """True if a schema (following $refs) has a UUID field: an id that may name nothing."""
    if isinstance(node, list):
        return any(_refers_to_resources(item, schemas, seen) for item in node)
    if not isinstance(node, dict):
        return False
    if node.get("format") == "uuid":
        return True
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        name = ref.rsplit("/", 1)[-1]
        if name in seen:
            return False
        seen.add(name)
        return _refers_to_resources(schemas.get(name), schemas, seen)
    return any(_refers_to_resources(value, schemas, seen) for value in node.values())


def _is_problem_response(response: dict[str, Any]) -> bool:
    """An error response a route declared that the shared problem responses describe better.

    That is FastAPI's default 422 (its handler is replaced by problem+json) and any declared
    problem+json body; a route's own non-problem error body (readiness's 503) is kept.
    """
    text = json.dumps(response)
    return "HTTPValidationError" in text or PROBLEM_JSON in text or "ProblemDetail" in text


def _complete_operation(
    path: str, method: str, operation: dict[str, Any], schemas: dict[str, Any]
) -> None:
    given = operation.get("parameters", [])
    # Which paths need an API key is AuthMiddleware's rule. The Authorization header is
    # described by the security scheme (OpenAPI ignores it as a parameter), and
    # Idempotency-Key by the shared parameter below.
    needs_api_key = requires_api_key(path)
    parameters = [
        p
        for p in given
        if not _is_header(p, "authorization") and not _is_header(p, IDEMPOTENCY_HEADER)
    ]
    responses: dict[str, Any] = operation.setdefault("responses", {})
    statuses: set[int] = {500}
    if path.startswith("/v1/"):
        statuses.add(503)
    if needs_api_key:
        operation["security"] = [{SECURITY_SCHEME: []}]
        statuses |= {401, 403, 429}
    else:
        operation["security"] = []
    # 404: a path parameter, or any id in the query or body, can name a missing resource.
    if any(p.get("in") == "path" for p in parameters) or _refers_to_resources(
        [parameters, operation.get("requestBody")], schemas, set()
    ):
        statuses.add(404)
    if parameters or "requestBody" in operation:
        statuses.add(422)
    if "requestBody" in operation:
        statuses |= {400, 408, 413}
        _add_request_examples(operation)
    if method == "post" and needs_api_key:
        # Idempotency keys are scoped by API key: a POST without one (a provider's webhook,
        # authenticated by its signature) has none.
        parameters.append({"$ref": f"#/components/parameters/{IDEMPOTENCY_HEADER}"})
        statuses |= {400, 409, 422}
    if parameters:
        operation["parameters"] = parameters
    else:
        operation.pop("parameters", None)
    declared_problems = {
        int(code) for code, response in responses.items() if _is_problem_response(response)
    }
    for status in sorted(statuses | declared_problems):
        if status in PROBLEM_RESPONSES and (
            str(status) not in responses or status in declared_problems
        ):
            name = PROBLEM_RESPONSES[status][0]
            responses[str(status)] = {"$ref": f"#/components/responses/{name}"}
    for code, response in responses.items():
        if "$ref" in response:
            continue  # a shared problem response, which declares its own headers
        headers = response.setdefault("headers", {})
        headers["Request-Id"] = {"$ref": "#/components/headers/Request-Id"}
        if code == "201":
            headers["Location"] = {"$ref": "#/components/headers/Location"}
        if code.startswith("2") and method == "post" and needs_api_key:
            headers["Idempotent-Replayed"] = {"$ref": "#/components/headers/Idempotent-Replayed"}
        if code.startswith("2") and response.get("description") == "Successful Response":
            response["description"] = "Created" if code == "201" else "OK"
    operation["responses"] = dict(sorted(responses.items()))


def _add_request_examples(operation: dict[str, Any]) -> None:
    for media in operation["requestBody"].get("content", {}).values():
        ref = media.get("schema", {}).get("$ref", "")
        examples = REQUEST_EXAMPLES.get(ref.rsplit("/", 1)[-1])
        if examples:
            media["examples"] = copy.deepcopy(examples)


def _add_links(paths: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Link each created resource to the operations on `{collection}/{id}`."""
    for path, item in paths.items():
        created = item.get("post", {}).get("responses", {}).get("201")
        if not created:
            continue
        ref = created.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
        if not ref or "id" not in schemas.get(ref.rsplit("/", 1)[-1], {}).get("properties", {}):
            continue
        links: dict[str, Any] = {}
        for other_path, other_item in paths.items():
            rest = other_path.removeprefix(path + "/")
            if rest == other_path or not rest.startswith("{"):
                continue
            param = rest[1 : rest.index("}")]
            for method, operation in other_item.items():
                if method in HTTP_METHODS:
                    links[operation["operationId"]] = {
                        "operationId": operation["operationId"],
                        "parameters": {param: "$response.body#/id"},
                    }
        if links:
            created["links"] = links


def _close_pattern_maps(node: Any) -> None:
    """A dict whose keys are constrained (`patternProperties`) refuses other keys, so say so.

    Pydantic describes `dict[Pattern, V]` without `additionalProperties: false`, which by
    JSON Schema admits any other key with any value: a lie a fuzzer finds at once.
    """
    if isinstance(node, dict):
        if "patternProperties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _close_pattern_maps(value)
    elif isinstance(node, list):
        for value in node:
            _close_pattern_maps(value)


def _drop_unused_schemas(document: dict[str, Any]) -> None:
    """Drop the error body schemas the shared problem responses replaced everywhere."""
    schemas = document["components"]["schemas"]
    paths = json.dumps(document["paths"])
    for name, only_used_by in (
        ("HTTPValidationError", None),
        ("ValidationError", "HTTPValidationError"),
        ("ProblemDetail", None),
    ):
        if f"#/components/schemas/{name}" not in paths and (
            only_used_by is None or only_used_by not in schemas
        ):
            schemas.pop(name, None)


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The complete OpenAPI document of `app`."""
    document = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=DESCRIPTION,
        routes=app.routes,
        tags=TAGS,
    )
    components = document.setdefault("components", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas["ProblemError"] = PROBLEM_ERROR_SCHEMA
    for name, examples in SCHEMA_EXAMPLES.items():
        if name in schemas:
            schemas[name]["examples"] = copy.deepcopy(examples)
    components["securitySchemes"] = {
        SECURITY_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "API key",
            "description": "An API key created with `boxoffice-booking create-api-key`.",
        }
    }
    components["headers"] = HEADERS
    idempotency = validates_idempotency_keys(app)
    components["parameters"] = {
        IDEMPOTENCY_HEADER: {
            "name": IDEMPOTENCY_HEADER,
            "in": "header",
            "required": False,
            "description": (
                "A client-chosen unique key (a UUID is best) that makes a retry of this POST "
                "safe: the first response is replayed for the same key and body."
            ),
            "schema": (
                {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN}
                if idempotency
                else {"type": "string"}
            ),
            "example": "5f0c2b8e-3d52-4c1e-9a43-6f2f1d7f8a10",
        }
    }
    components["responses"] = {
        name: problem_response_component(status)
        for status, (name, _, _) in PROBLEM_RESPONSES.items()
    }
    document["x-problem-types"] = problem_type_list()
    used_tags: set[str] = set()
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                _complete_operation(path, method, operation, schemas)
                used_tags.update(operation.get("tags", []))
    document["tags"] = [tag for tag in TAGS if tag["name"] in used_tags]
    document["security"] = [{SECURITY_SCHEME: []}]
    _add_links(document.get("paths", {}), schemas)
    _close_pattern_maps(document)
    _drop_unused_schemas(document)
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve the complete document at /openapi.json (and so in /docs)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def operation_id(route: APIRoute) -> str:
    """The handler's name, e.g. `create_booking`, as the operationId."""
    return route.name
