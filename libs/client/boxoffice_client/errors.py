"""Errors the client raises: one class per problem family, each carrying the problem details."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

PROBLEM_BASE = "https://boxoffice.dev/problems/"


class Problem(BaseModel):
    """An RFC 9457 problem details body; extension members are kept as extra fields."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str = "about:blank"
    title: str = ""
    status: int = 0
    detail: str = ""
    instance: str = ""

    @property
    def slug(self) -> str:
        """The last part of `type`, e.g. `seats-unavailable`."""
        return self.type.removeprefix(PROBLEM_BASE)

    @property
    def extensions(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def request_id(self) -> str | None:
        """The answer's Request-Id: quote it to the API's operators."""
        value = self.extensions.get("request_id")
        return str(value) if value else None

    @property
    def trace_id(self) -> str | None:
        """The request's trace id, when it was traced."""
        value = self.extensions.get("trace_id")
        return str(value) if value else None


class BoxofficeError(Exception):
    """Base class of every error this client raises."""


class TransportError(BoxofficeError):
    """The API could not be reached, or the connection broke, on every attempt."""


class ApiError(BoxofficeError):
    """The API answered with an error status; `problem` holds its problem details."""

    def __init__(self, response: httpx.Response, problem: Problem) -> None:
        request_id = problem.request_id or response.headers.get("request-id")
        super().__init__(
            f"{response.status_code} {problem.slug}: {problem.detail or problem.title}"
            + (f" (request {request_id})" if request_id else "")
        )
        self.request_id = request_id
        self.status = response.status_code
        self.problem = problem
        self.response = response

    @property
    def retry_after(self) -> float | None:
        """The server's `Retry-After`, in seconds, if it sent one."""
        from boxoffice_client.retry import parse_retry_after

        return parse_retry_after(self.response.headers.get("retry-after"))


class BadRequestError(ApiError):
    """400: the body is not JSON, or a header (such as Idempotency-Key) is not valid."""


class AuthenticationError(ApiError):
    """401: the API key is missing, unknown or revoked."""


class PermissionDeniedError(ApiError):
    """403: the API key lacks the scope the operation needs."""


class NotFoundError(ApiError):
    """404: the resource does not exist, or it is a booking of another client.

    A key sees only its client's bookings (unless it has `bookings:read:all` or `admin`), and
    the API answers for another client's booking exactly as for a missing one.
    """


class ConflictError(ApiError):
    """409: the request conflicts with the current state."""


class SeatsUnavailableError(ConflictError):
    """409 seats-unavailable: some seats are already held or sold; `seats` names them."""

    @property
    def seats(self) -> list[str]:
        return [str(seat) for seat in self.problem.extensions.get("seats", [])]


class ActiveHoldsLimitError(ConflictError):
    """409 active-holds-limit: the client already has `limit` active holds; pay for, cancel or
    let one expire before holding again."""

    @property
    def limit(self) -> int | None:
        value = self.problem.extensions.get("limit")
        return value if isinstance(value, int) else None


class UnprocessableEntityError(ApiError):
    """422: the request is well-formed but invalid (see `problem.extensions['errors']`)."""


class RateLimitedError(ApiError):
    """429: too many requests for this API key; wait `retry_after` seconds."""


class AuthenticationThrottledError(RateLimitedError):
    """429 `authentication-throttled`: this address sent too many requests without a valid key."""


class PayloadTooLargeError(ApiError):
    """413: the body is larger than the operation takes (`problem.extensions["limit"]`)."""


class ServerError(ApiError):
    """5xx: the API failed or a dependency is unavailable."""


class ServiceUnavailableError(ServerError):
    """503: a dependency is unavailable; retry later."""


BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitedError,
    503: ServiceUnavailableError,
}
BY_SLUG: dict[str, type[ApiError]] = {
    "seats-unavailable": SeatsUnavailableError,
    "active-holds-limit": ActiveHoldsLimitError,
    "authentication-throttled": AuthenticationThrottledError,
}


def error_for(response: httpx.Response) -> ApiError:
    """The exception for an error response, with its problem details parsed when present."""
    try:
        problem = Problem.model_validate(response.json())
    except (ValueError, ValidationError):
        # Not problem+json (a proxy in between, say): keep what can be known.
        problem = Problem(
            status=response.status_code, title=response.reason_phrase, detail=response.text[:500]
        )
    cls = BY_SLUG.get(problem.slug) or BY_STATUS.get(response.status_code)
    if cls is None:
        cls = ServerError if response.status_code >= 500 else ApiError
    return cls(response, problem)
