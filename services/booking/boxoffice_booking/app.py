"""The FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from boxoffice_db.engine import get_engine, session_scope
from boxoffice_db.models import BOOTSTRAP_KEY_NAME
from boxoffice_settings import get_settings
from boxoffice_telemetry.http import instrument_fastapi
from boxoffice_telemetry.metrics import metrics_asgi_app
from boxoffice_telemetry.tracing import configure_tracing, trace_sqlalchemy
from fastapi import FastAPI

from boxoffice_booking.auth import SCOPES, AuthMiddleware, create_api_key
from boxoffice_booking.deps import AsyncRuntime
from boxoffice_booking.hold_guard import HoldGuardMiddleware, ReservedHoldMiddleware
from boxoffice_booking.idempotency import IdempotencyMiddleware
from boxoffice_booking.limits import BodyLimitMiddleware
from boxoffice_booking.openapi import install_openapi, operation_id
from boxoffice_booking.payment_path import PaymentMiddleware
from boxoffice_booking.problems import OutageMiddleware, install_problem_handlers
from boxoffice_booking.request_ids import RequestIdMiddleware
from boxoffice_booking.routes import bookings, health, payments, showtimes, tasks, venues


def seed_bootstrap_key() -> None:
    """Accept BOXOFFICE_BOOTSTRAP_API_KEY as an admin key (development and tests)."""
    key = get_settings().bootstrap_api_key
    if key is not None:
        with session_scope() as session:
            create_api_key(
                session,
                BOOTSTRAP_KEY_NAME,
                list(SCOPES),
                key.get_secret_value(),
                client="bootstrap",
            )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    seed_bootstrap_key()
    settings = get_settings()
    if settings.metrics_port == 0 and settings.is_development:
        # `make run` and tests without a metrics port: /metrics beside the API. Elsewhere it
        # is only on BOXOFFICE_METRICS_PORT (boxoffice_booking.main): it holds revenue.
        app.mount("/metrics", metrics_asgi_app())
    # Sync handlers run on as many threads as the pool has connections. Each needs one, and
    # with anyio's default 40 threads those beyond the pool only waited for a connection (or
    # took an overflow one) while PostgreSQL ran more transactions at once: its CPU per
    # payment under `make bench` was 2.2-3.1 ms with 40 threads and 1.5-2.2 ms with 8-10.
    # Liveness (`/healthz`) is async, so it never queues behind them.
    anyio.to_thread.current_default_thread_limiter().total_tokens = settings.db_pool_size
    runtime = AsyncRuntime.from_settings(settings)
    await runtime.open()
    app.state.runtime = runtime
    try:
        yield
    finally:
        del app.state.runtime
        await runtime.close()


def create_app() -> FastAPI:
    app = FastAPI(
        title="Boxoffice booking API",
        version="1.0.0",
        summary="Hold seats, pay, and get a confirmation.",
        lifespan=lifespan,
        # operationId is the handler's name (`create_booking`): stable and readable in clients.
        generate_unique_id_function=operation_id,
    )
    install_problem_handlers(app)
    # Added innermost first: a body is capped before the key is resolved, and the key before
    # the Idempotency-Key is claimed (see boxoffice_booking.limits and .auth).
    # A hold the guard reserved is answered here, without FastAPI's routing and dependencies.
    app.add_middleware(ReservedHoldMiddleware)
    # A payment too (boxoffice_booking.direct says why and how).
    app.add_middleware(PaymentMiddleware)
    app.add_middleware(IdempotencyMiddleware)
    # A hold's losers are turned away before the Idempotency-Key claim (its two writes).
    app.add_middleware(HoldGuardMiddleware)
    app.add_middleware(AuthMiddleware)
    app.add_middleware(BodyLimitMiddleware)
    # A PostgreSQL or Redis outage anywhere inside is a 503, never a 500 (with a request id).
    app.add_middleware(OutageMiddleware)
    # Inside the tracing and metrics middleware (it reads the trace id), outside the rest.
    app.add_middleware(RequestIdMiddleware)
    app.include_router(health.router)
    app.include_router(venues.router)
    app.include_router(showtimes.router)
    app.include_router(bookings.router)
    app.include_router(payments.router)
    app.include_router(tasks.router)
    instrument_fastapi(app)
    if configure_tracing("booking-api"):
        trace_sqlalchemy(get_engine())
    install_openapi(app)
    return app
