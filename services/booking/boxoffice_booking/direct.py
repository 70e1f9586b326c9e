"""Answering a route's requests without FastAPI's routing, as its handler would answer them.

Two endpoints are answered by pure ASGI middleware inside the Idempotency-Key middleware: a
hold the guard reserved (`hold_guard.ReservedHoldMiddleware`) and a payment
(`payment_path.PaymentMiddleware`). A profile of each under load put a fifth (the hold) and
an eighth (the payment) of the API's CPU in FastAPI's routing, the solving of dependencies
(each one's cache key computed on every request), the body's validation and the answer's
revalidation (issue 18). Such a middleware takes only a request it has checked as FastAPI
would (anything else goes on to FastAPI untouched, its body replayed), runs the handler's
own code, serialises the answer as FastAPI does, and answers a failure with the app's own
exception handlers.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send


def exception_handler(scope: Scope, exc: Exception) -> Any:
    """The app's handler for `exc`, as Starlette's ExceptionMiddleware finds it (by class,
    most specific first); None for what only the outermost error middleware answers."""
    handlers = scope["app"].exception_handlers
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None


async def answer_failure(scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
    """Answer `exc` with the app's handler for it, or raise it on (as from the handler)."""
    handler = exception_handler(scope, exc)
    if handler is None:
        raise exc
    response: Response = await handler(Request(scope, receive), exc)
    await response(scope, receive, send)


async def send_json(
    send: Send, status: int, adapter: TypeAdapter[Any], answer: Any, location: str
) -> None:
    """`answer` as FastAPI sends a handler's answer through its response model (`by_alias`),
    with the `Location` the handler sets."""
    body = adapter.dump_json(answer, by_alias=True)
    headers = [
        (b"content-length", str(len(body)).encode()),
        (b"content-type", b"application/json"),
        (b"location", location.encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the body read here, then whatever the client sends next."""
    delivered = False

    async def replayed() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed
