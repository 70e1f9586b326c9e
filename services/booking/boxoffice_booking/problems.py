"""RFC 9457 problem details: every API error is `application/problem+json` with a stable type."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from boxoffice_bookings import errors
from boxoffice_telemetry.asgi import HttpMiddleware
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg import InterfaceError as PgInterfaceError
from psycopg import OperationalError as PgOperationalError
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, ConfigDict
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SqlPoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message, Receive, Scope, Send

from boxoffice_booking.request_ids import HEADER, REQUEST_ID, request_context

log = logging.getLogger(__name__)

PROBLEM_BASE = "https://boxoffice.dev/problems/"
PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """An error the API reports to the client; subclasses fix the status, type and title."""

    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"
    # Response headers every problem of the class carries; an instance may add its own.
    default_headers: ClassVar[Mapping[str, str]] = {}

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions
        self.headers: dict[str, str] = dict(self.default_headers)

    def body(self, instance: str, context: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The problem+json body; `context` adds the request and trace ids."""
        return {
            "type": PROBLEM_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
            **self.extensions,
            **(context or {}),
        }


class NotFound(Problem):
    status, slug, title = 404, "not-found", "Not found"


class Unauthorized(Problem):
    status, slug, title = 401, "unauthorized", "Missing or invalid API key"
    default_headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(Problem):
    status, slug, title = 403, "forbidden", "The API key lacks a scope"


class InvalidSeats(Problem):
    status, slug, title = 422, "invalid-seats", "Seats are unknown or not for sale"


class SeatsUnavailable(Problem):
    status, slug, title = 409, "seats-unavailable", "Seats are already held or sold"


class ActiveHoldsLimit(Problem):
    status, slug, title = 409, "active-holds-limit", "The client has too many active holds"


class BookingStateConflict(Problem):
    status, slug, title = 409, "booking-state-conflict", "The booking cannot do that now"


class HoldExpired(Problem):
    status, slug, title = 409, "hold-expired", "The hold expired and its seats were taken"


# How long a client is told to wait when PostgreSQL or Redis is unreachable (a restart or a
# fail-over takes seconds).
OUTAGE_RETRY_AFTER = "2"


class ServiceUnavailable(Problem):
    status, slug, title = 503, "service-unavailable", "A dependency is unavailable"
    default_headers = {"Retry-After": OUTAGE_RETRY_AFTER}


# What a dependency outage raises: a refused or broken connection, a pool that cannot hand one
# out in time. Such an error is a 503 with Retry-After, never a 500.
DATABASE_OUTAGES: tuple[type[BaseException], ...] = (
    PgOperationalError,
    PgInterfaceError,
    PoolTimeout,
    SqlPoolTimeout,
)
REDIS_OUTAGES: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError)


def outage_of(exc: BaseException | None) -> str | None:
    """`database` or `redis` if `exc`, or an error that caused it, is a dependency outage."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DATABASE_OUTAGES):
            return "database"
        if isinstance(exc, DBAPIError) and (
            exc.connection_invalidated or isinstance(exc.orig, DATABASE_OUTAGES)
        ):
            return "database"
        if isinstance(exc, REDIS_OUTAGES):
            return "redis"
        exc = exc.__cause__ or exc.__context__
    return None


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


class PaymentProviderUnavailable(Problem):
    status, slug, title = 503, "payment-provider-unavailable", "The payment provider failed"
    default_headers = {"Retry-After": "5"}


class InvalidWebhookSignature(Problem):
    status, slug, title = 401, "invalid-webhook-signature", "The webhook signature does not match"


class UnknownPaymentProvider(Problem):
    status, slug, title = 422, "unknown-payment-provider", "The payment provider is not enabled"


class CancellationClosed(Problem):
    status, slug, title = 409, "cancellation-closed", "Too close to the showtime to cancel"


class ShowtimeOverlap(Problem):
    status, slug, title = 409, "showtime-overlap", "The screen has another showtime then"


class CatalogConflict(Problem):
    status, slug, title = 409, "catalog-conflict", "The name is already taken"


class InvalidCatalog(Problem):
    status, slug, title = 422, "invalid-catalog", "The catalog request is not consistent"


class InvalidCursor(Problem):
    status, slug, title = 422, "invalid-cursor", "The pagination cursor is not valid"


class PayloadTooLarge(Problem):
    status, slug, title = 413, "payload-too-large", "The request body is too large"
    # The rest of the body is not read: the connection cannot carry another request.
    default_headers = {"Connection": "close"}

    def __init__(self, limit: int) -> None:
        super().__init__(f"This endpoint takes bodies of at most {limit} bytes.", limit=limit)


class BodyReadTimeout(Problem):
    status, slug, title = 408, "request-timeout", "The request body stopped arriving"
    # The rest of the body was not read: the connection cannot carry another request.
    default_headers = {"Connection": "close"}

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"No part of the request body arrived for {seconds:g} seconds.", timeout=seconds
        )


class AuthenticationThrottled(Problem):
    status, slug, title = 429, "authentication-throttled", "Too many unauthenticated requests"

    def __init__(self, limit: int, window_seconds: int, retry_after: int) -> None:
        super().__init__(
            f"This address may send {limit} requests without a valid API key per "
            f"{window_seconds}s.",
            retry_after=retry_after,
        )
        self.headers = {"Retry-After": str(retry_after)}


class RateLimited(Problem):
    status, slug, title = 429, "rate-limited", "Too many requests for this API key"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.headers = {"Retry-After": str(retry_after)}


# The booking lifecycle's typed errors, as the problem each one is answered with.
LIFECYCLE_PROBLEMS: dict[type[errors.LifecycleError], type[Problem]] = {
    errors.BookingNotFound: NotFound,
    errors.ShowtimeNotFound: NotFound,
    errors.InvalidSeats: InvalidSeats,
    errors.SeatsUnavailable: SeatsUnavailable,
    errors.ActiveHoldsLimit: ActiveHoldsLimit,
    errors.BookingStateConflict: BookingStateConflict,
    errors.HoldExpired: HoldExpired,
    errors.CancellationClosed: CancellationClosed,
    errors.PaymentProviderUnavailable: PaymentProviderUnavailable,
    errors.InvalidWebhookSignature: InvalidWebhookSignature,
    errors.UnknownPaymentProvider: UnknownPaymentProvider,
}


def problem_of(exc: errors.LifecycleError) -> Problem:
    """The problem a lifecycle error is answered with (its detail and extensions kept)."""
    for cls in type(exc).__mro__:
        problem = LIFECYCLE_PROBLEMS.get(cls)
        if problem is not None:
            return problem(exc.detail, **exc.extensions)
    return Problem(exc.detail, **exc.extensions)


class ProblemDetail(BaseModel):
    """RFC 9457 problem details; extensions such as `seats` or `errors` may be added."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str


async def send_problem(send: Send, problem: Problem, scope: Scope) -> None:
    """Answer with `problem` from ASGI middleware, outside FastAPI's exception handlers."""
    body = json.dumps(problem.body(scope["path"], request_context(scope))).encode()
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in problem.headers.items()),
    ]
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class OutageMiddleware(HttpMiddleware):
    """Answer a dependency outage raised anywhere inside (middleware included) as a 503.

    FastAPI's handlers cover the routes; an outage in a middleware (the Idempotency-Key claim,
    the key lookup) would otherwise reach Starlette's error middleware, which answers and
    then re-raises, and the client sees its connection reset.
    """

    async def handle_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except Exception as exc:
            dependency = outage_of(exc)
            if dependency is None or started:
                raise
            log.warning("%s unavailable on %s: %r", dependency, scope.get("path"), exc)
            problem = ServiceUnavailable(f"The {dependency} is unavailable; retry shortly.")
            await send_problem(send, problem, scope)


def problem_responses(
    *statuses: int, common: tuple[int, ...] = (401, 403, 422, 429)
) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: each error status documented as problem+json.

    `common` are the answers any authenticated route can give (no key, no scope, invalid
    input, over the rate limit); a POST adds 400 (malformed JSON or Idempotency-Key).
    """
    return {
        status: {"model": ProblemDetail, "content": {PROBLEM_JSON: {}}}
        for status in sorted({*common, *statuses})
    }


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
        **request_context(request.scope),
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return JSONResponse(
        exc.body(request.url.path, request_context(request.scope)),
        status_code=exc.status,
        media_type=PROBLEM_JSON,
        headers=exc.headers or None,
    )


async def _on_lifecycle_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.LifecycleError)
    return await _on_problem(request, problem_of(exc))


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
    # FastAPI's own 400 is a body it could not parse (e.g. JSON nested too deep).
    slugs = {400: "malformed-json", 404: "not-found", 405: "method-not-allowed"}
    slug = slugs.get(exc.status_code, "http-error")
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


def _outage_response(request: Request, exc: Exception, dependency: str) -> JSONResponse:
    log.warning("%s unavailable on %s %s: %r", dependency, request.method, request.url.path, exc)
    problem = ServiceUnavailable(f"The {dependency} is unavailable; retry shortly.")
    request_id = request.scope.get(REQUEST_ID)
    return JSONResponse(
        problem.body(request.url.path, request_context(request.scope)),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers={**problem.headers, **({HEADER: str(request_id)} if request_id else {})},
    )


async def _on_dependency_error(request: Request, exc: Exception) -> JSONResponse:
    dependency = outage_of(exc)
    if dependency is not None:
        return _outage_response(request, exc, dependency)
    return await _on_unexpected(request, exc)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Also reached by errors raised in middleware (outside the routes' handlers).
    dependency = outage_of(exc)
    if dependency is not None:
        return _outage_response(request, exc, dependency)
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    # Answered outside every middleware (Starlette's ServerErrorMiddleware): the Request-Id
    # header is added here.
    request_id = request.scope.get(REQUEST_ID)
    return problem_response(
        request,
        500,
        "internal-error",
        "Internal error",
        "An unexpected error occurred; quote the request_id to support.",
        headers={HEADER: str(request_id)} if request_id else None,
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error, expected or not, answer as problem+json."""
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(errors.LifecycleError, _on_lifecycle_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    for outage in (*DATABASE_OUTAGES, DBAPIError, *REDIS_OUTAGES):
        app.add_exception_handler(outage, _on_dependency_error)
    app.add_exception_handler(Exception, _on_unexpected)
