"""Losers of a contested seat turned away before any write, by one atomic Redis script.

A hold (`POST /v1/bookings`) passes here after `AuthMiddleware` and before the
Idempotency-Key claim. One script (`AsyncSeatCache.reserve`) charges the key's rate limit
and judges the seats:

- a seat another hold has in flight, or one the cache knows is held or sold: a `409` at once,
  without the Idempotency-Key claim and release (two writes) or FastAPI's request machinery;
  an in-flight seat's `409` carries `Retry-After: 1`, since that hold may yet fail (a retry
  with the same Idempotency-Key takes over its own earlier attempt's reservation instead);
- otherwise the seats are reserved for this request, which goes on to the Idempotency-Key
  middleware and then `ReservedHoldMiddleware` (below): the hold's one statement claims the
  key too (`deps.KEY_CLAIM`), and the handler's own code answers it without FastAPI's
  routing. PostgreSQL decides every winner; the hold marks its seats held, and any other
  answer puts the previous entries back before the client sees it.

A `409` here would be wrong for a retry of a request whose answer is stored (its seats are
"taken" by itself), so when the request carries an Idempotency-Key with a live record, it goes
on to the idempotency middleware, which replays or refuses it (one read, no write). Anything
the guard cannot judge (a body FastAPI would refuse, a key without the scope, Redis down)
goes on untouched, to be answered exactly as without the guard.

Found by `make bench` (hot seats, issue 18): a loser cost as much as a winner minus the hold
statement, about 2 ms of the API's CPU each.
"""

from __future__ import annotations

import functools
import time
import uuid

from boxoffice_bookings.errors import InvalidSeats
from boxoffice_bookings.holds import HoldRequest
from boxoffice_settings import get_settings
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import Headers
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from boxoffice_booking import direct
from boxoffice_booking.auth import (
    PRINCIPAL,
    RATE_CHARGED,
    Principal,
    rate_limit_window,
    rate_limited,
)
from boxoffice_booking.deps import BORROWS_CONNECTION, runtime_of
from boxoffice_booking.direct import answer_failure, send_json
from boxoffice_booking.idempotency import HEADER, valid_key
from boxoffice_booking.idempotency_repository import has_live_record
from boxoffice_booking.limits import read_body
from boxoffice_booking.problems import Problem, SeatsUnavailable, send_problem
from boxoffice_booking.routes.bookings import (
    HOLDS,
    booking_public,
    create_booking,
    hold_for,
    hold_request,
    router,
)
from boxoffice_booking.schemas import BookingCreate, BookingPublic
from boxoffice_booking.seat_cache import (
    HOLD_MARKED,
    HOLD_REQUEST,
    RESERVATION,
    Reservation,
    Verdict,
    reservation_token,
)

PATH = "/v1/bookings"
SCOPE = "bookings:write"


class HoldGuardMiddleware:
    """Pure ASGI: it reads the body once and hands it on unchanged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = scope.get(PRINCIPAL)
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] != PATH
            or not isinstance(principal, Principal)
            or not principal.has(SCOPE)
        ):
            await self.app(scope, receive, send)
            return
        # The handler runs on the event loop: the Idempotency-Key claim's connection serves
        # the hold and the stored answer too.
        scope[BORROWS_CONNECTION] = True
        headers = Headers(scope=scope)
        key = headers.get(HEADER)
        if not headers.get("content-type", "").startswith("application/json") or (
            key is not None and not valid_key(key)
        ):
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        if body is None:
            return
        replay = direct.replay(body, receive)
        settings = get_settings()
        try:
            hold = hold_request(BookingCreate.model_validate_json(body), principal, settings)
        except (ValidationError, InvalidSeats):
            await self.app(scope, replay, send)  # answered by FastAPI and the handler
            return
        runtime = runtime_of(scope["app"])
        now = time.time()
        window_seconds = settings.rate_limit_window_seconds
        rate_key, window = rate_limit_window(principal, window_seconds, now)
        reservation = await runtime.seat_cache.reserve(
            hold.showtime_id,
            hold.labels,
            rate_key,
            settings.rate_limit_requests,
            window_seconds,
            # A retry takes over its own earlier attempt's reservation (that attempt's process
            # may have died with it), rather than being refused as in flight for up to 5 s.
            token=reservation_token(principal.key_hash, key) if key is not None else None,
        )
        if reservation is None:  # Redis cannot say: the usual path, rate limit included
            await self.app(scope, replay, send)
            return
        scope[RATE_CHARGED] = True
        verdict = reservation.verdict
        if verdict is Verdict.RATE_LIMITED:
            limit = settings.rate_limit_requests
            await self._answer(scope, send, rate_limited(limit, window_seconds, window, now))
            return
        if verdict is not Verdict.RESERVED:
            if key is not None:
                async with runtime.pool.connection() as conn:
                    retried = await has_live_record(conn, principal.key_hash, key)
                if retried:
                    await self.app(scope, replay, send)
                    return
            seats = reservation.seats
            problem: Problem
            if verdict is Verdict.IN_FLIGHT:
                HOLDS.labels("conflict_in_flight").inc()
                problem = SeatsUnavailable(
                    f"Seats being held by another request: {', '.join(seats)}.", seats=seats
                )
                problem.headers["Retry-After"] = "1"
            else:
                HOLDS.labels("conflict_cached").inc()
                problem = SeatsUnavailable(f"Seats already taken: {', '.join(seats)}.", seats=seats)
            await self._answer(scope, send, problem)
            return
        # The handler's, without checking the body again; it also says the hold goes straight
        # to its statement (ReservedHoldMiddleware), which claims the Idempotency-Key.
        scope[HOLD_REQUEST] = hold
        await self._reserved(scope, replay, send, hold.showtime_id, reservation)

    async def _reserved(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        showtime_id: uuid.UUID,
        reservation: Reservation,
    ) -> None:
        """Run the hold; unless it marked its seats held, put them back before answering."""
        cache = runtime_of(scope["app"]).seat_cache
        scope[RESERVATION] = reservation
        settled = False

        async def settle() -> None:
            nonlocal settled
            if not settled:
                settled = True
                if not scope.get(HOLD_MARKED):
                    await cache.release(showtime_id, reservation)

        async def settling_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                await settle()
            await send(message)

        try:
            await self.app(scope, receive, settling_send)
        finally:
            await settle()

    async def _answer(self, scope: Scope, send: Send, problem: Problem) -> None:
        # Metrics, spans and logs name the route, as for an answer from the handler.
        scope["route"] = hold_route()
        await send_problem(send, problem, scope)


_BOOKING_JSON = TypeAdapter(BookingPublic)


class ReservedHoldMiddleware:
    """The endpoint of a hold the guard reserved, inside the Idempotency-Key middleware.

    Such a request is known to be a valid hold with the scope to make it (the guard checked
    its key, its body into a `HoldRequest` and its seats), so it is answered here by the
    handler's own `hold_for`, without FastAPI's routing, dependencies, second validation of
    the body and revalidation of the answer (issue 18). The answer is the handler's, byte for
    byte: the same `BookingPublic` serialised as FastAPI does (`by_alias`), and a failure
    answered by the app's own exception handlers; anything they do not handle goes up as
    from the handler. Every other request goes on to FastAPI.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hold = scope.get(HOLD_REQUEST)
        if not isinstance(hold, HoldRequest):
            await self.app(scope, receive, send)
            return
        scope["route"] = hold_route()
        try:
            booking = await hold_for(scope, runtime_of(scope["app"]), hold)
        except Exception as exc:
            await answer_failure(scope, receive, send, exc)
            return
        location = f"/v1/bookings/{booking.id}"
        await send_json(send, 201, _BOOKING_JSON, booking_public(booking), location)


@functools.cache
def hold_route() -> BaseRoute | None:
    """The APIRoute of the bookings router (the app's own routes are included routers)."""
    return next((r for r in router.routes if getattr(r, "endpoint", None) is create_booking), None)
