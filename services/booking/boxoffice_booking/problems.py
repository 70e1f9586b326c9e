"""RFC 9457 problem details: every API error is `application/problem+json` with a stable type."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

PROBLEM_BASE = "https://boxoffice.dev/problems/"
PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """An error the API reports to the client; subclasses fix the status, type and title."""

    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions
        self.headers: dict[str, str] = {}

    def body(self, instance: str) -> dict[str, Any]:
        return {
            "type": PROBLEM_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
            **self.extensions,
        }


class NotFound(Problem):
    status, slug, title = 404, "not-found", "Not found"


class Unauthorized(Problem):
    status, slug, title = 401, "unauthorized", "Missing or invalid API key"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(Problem):
    status, slug, title = 403, "forbidden", "The API key lacks a scope"


class InvalidSeats(Problem):
    status, slug, title = 422, "invalid-seats", "Seats are unknown or not for sale"


class SeatsUnavailable(Problem):
    status, slug, title = 409, "seats-unavailable", "Seats are already held or sold"


class BookingStateConflict(Problem):
    status, slug, title = 409, "booking-state-conflict", "The booking cannot do that now"


class HoldExpired(Problem):
    status, slug, title = 409, "hold-expired", "The hold expired and its seats were taken"


class ServiceUnavailable(Problem):
    status, slug, title = 503, "service-unavailable", "A dependency is unavailable"


# Problem types the handlers below produce themselves (the `Problem` subclasses add the rest);
# the OpenAPI document lists them all as examples: (status, slug, title).
HANDLER_PROBLEM_TYPES: tuple[tuple[int, str, str], ...] = (
    (400, "malformed-json", "Malformed JSON"),
    (404, "not-found", "Not found"),
    (405, "method-not-allowed", "Method Not Allowed"),
    (422, "validation-error", "The request is not valid"),
    (500, "internal-error", "Internal error"),
)


def problem_types() -> list[tuple[int, str, str]]:
    """Every (status, slug, title) the API can answer with, for the OpenAPI document."""
    found = {slug: (status, slug, title) for status, slug, title in HANDLER_PROBLEM_TYPES}
    pending: list[type[Problem]] = list(Problem.__subclasses__())
    while pending:
        cls = pending.pop()
        found.setdefault(cls.slug, (cls.status, cls.slug, cls.title))
        pending.extend(cls.__subclasses__())
    return sorted(found.values())


def problem_response(
    request: Request,
    status: int,
    slug: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **extensions,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return JSONResponse(
        exc.body(request.url.path),
        status_code=exc.status,
        media_type=PROBLEM_JSON,
        headers=exc.headers or None,
    )


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]
    if any(err["type"] == "json_invalid" for err in errors):
        return problem_response(
            request,
            400,
            "malformed-json",
            "Malformed JSON",
            "The body is not valid JSON.",
            errors=errors,
        )
    return problem_response(
        request,
        422,
        "validation-error",
        "The request is not valid",
        "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors),
        errors=errors,
    )


def allowed_methods(request: Request) -> str:
    """Every method some route answers on this path (RFC 9110 `Allow`).

    Starlette's 405 names only the first route that matched the path, so a path with GET and
    POST on two routes would claim to allow one of them.
    """
    from fastapi.routing import iter_route_contexts

    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(request.url.path):
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:
        headers["Allow"] = allowed_methods(request) or headers.get("Allow", "")
    return problem_response(
        request,
        exc.status_code,
        slug,
        str(exc.detail),
        str(exc.detail),
        headers=headers or None,
    )


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        request, 500, "internal-error", "Internal error", "An unexpected error occurred."
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error, expected or not, answer as problem+json."""
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
