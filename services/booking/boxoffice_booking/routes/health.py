"""Liveness and readiness."""

from __future__ import annotations

from boxoffice_db.engine import ping
from boxoffice_messaging.redis_client import redis_from_settings
from fastapi.responses import JSONResponse

from boxoffice_booking.deps import SessionDep, SessionRouter, SettingsDep
from boxoffice_booking.schemas import Health

router = SessionRouter(tags=["health"])


# On the event loop: a probe never waits for a thread that busy handlers hold (there are as
# many as the pool has connections: app.lifespan).
@router.get("/healthz")
async def read_health() -> Health:
    """The process is up; says nothing of its dependencies."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def read_readiness(session: SessionDep, settings: SettingsDep) -> JSONResponse:
    """Ready when PostgreSQL and Redis both answer."""
    checks: dict[str, str] = {}
    try:
        ping(session)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        client = redis_from_settings(settings, socket_timeout=2, socket_connect_timeout=2)
        with client:
            client.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    body = Health(status="ok" if ready else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
