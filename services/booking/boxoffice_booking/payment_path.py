"""A payment (`POST /v1/bookings/{booking_id}/payments`) answered without FastAPI's routing.

Inside the Idempotency-Key middleware, so that its answer is stored and replayed as any other.
It takes a request only when it has checked everything FastAPI's route would: the path's
booking id (pydantic's UUID, as the path parameter), a key with the `bookings:write` scope,
a JSON body that is a valid `PaymentCreate`. The key's rate limit is charged as the route's
dependency charges it, and the handler's own code (`routes.bookings.pay_for`) answers, its
answer serialised as FastAPI serialises it and its failures (a `409`, a `404`, a `429`, an
outage's `503`) answered by the app's exception handlers (`direct`). Anything else (a body
FastAPI would refuse, a key without the scope, a malformed id) goes on to FastAPI untouched,
its body replayed, to be answered exactly as without this middleware.

Found by `make bench` (issue 18): FastAPI's routing, dependencies and validation cost about an
eighth of the API's CPU per payment, and the payment is the API's dearest request.
"""

from __future__ import annotations

import functools
import re
import uuid

from boxoffice_settings import get_settings
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import Headers
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from boxoffice_booking import direct
from boxoffice_booking.auth import PRINCIPAL, RATE_CHARGED, Principal, check_rate_limit
from boxoffice_booking.deps import runtime_of
from boxoffice_booking.limits import read_body
from boxoffice_booking.routes.bookings import create_payment, pay_for, payments_location, router
from boxoffice_booking.schemas import PaymentCreate, PaymentPublic

SCOPE = "bookings:write"
_PATH = re.compile(r"/v1/bookings/([^/]+)/payments")
_BOOKING_ID = TypeAdapter(uuid.UUID)
_PAYMENT_JSON = TypeAdapter(PaymentPublic)


def payment_request(scope: Scope) -> tuple[Principal, uuid.UUID] | None:
    """The caller and the booking of a payment this middleware may answer; None otherwise."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    matched = _PATH.fullmatch(scope["path"])
    principal = scope.get(PRINCIPAL)
    if matched is None or not isinstance(principal, Principal) or not principal.has(SCOPE):
        return None
    try:
        return principal, _BOOKING_ID.validate_python(matched.group(1))
    except ValidationError:
        return None


class PaymentMiddleware:
    """Pure ASGI: it reads the body once and hands it on unchanged to what it does not answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = payment_request(scope)
        if request is None or not Headers(scope=scope).get("content-type", "").startswith(
            "application/json"
        ):
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        if body is None:
            return
        replayed = direct.replay(body, receive)
        try:
            payment = PaymentCreate.model_validate_json(body)
        except ValidationError:
            await self.app(scope, replayed, send)  # answered by FastAPI: its 422
            return
        principal, booking_id = request
        # Metrics, spans and logs name the route, as for an answer from the handler.
        scope["route"] = payment_route()
        runtime = runtime_of(scope["app"])
        try:
            if not scope.get(RATE_CHARGED):
                settings = get_settings()
                await check_rate_limit(
                    runtime.redis,
                    principal,
                    settings.rate_limit_requests,
                    settings.rate_limit_window_seconds,
                )
            public, reused = await pay_for(runtime, principal, booking_id, payment)
        except Exception as exc:
            await direct.answer_failure(scope, replayed, send, exc)
            return
        status = 200 if reused else 201
        await direct.send_json(send, status, _PAYMENT_JSON, public, payments_location(booking_id))


@functools.cache
def payment_route() -> BaseRoute | None:
    """The APIRoute of `create_payment` (the app's own routes are included routers)."""
    return next((r for r in router.routes if getattr(r, "endpoint", None) is create_payment), None)
