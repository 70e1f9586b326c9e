"""The baseline: a bare FastAPI endpoint taking the same body, served by uvicorn the same way.

It validates the request with pydantic and answers 201 with a small JSON body, and does
nothing else: no auth, no database, no Redis. `python -m bench.baseline_app` serves it with the
booking API's uvicorn options and worker count (BOXOFFICE_API_PORT, BOXOFFICE_API_WORKERS),
its startup heap frozen as the API's is.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import uvicorn
from boxoffice_telemetry.heap import freeze_startup_heap
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

SeatLabel = Annotated[str, StringConstraints(pattern=r"^[A-Z]{1,3}[0-9]{1,3}$")]


class Customer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: EmailStr
    phone: str | None = None


class HoldRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    showtime_id: uuid.UUID
    seats: list[SeatLabel] = Field(min_length=1)
    customer: Customer


class HoldEcho(BaseModel):
    id: uuid.UUID
    showtime_id: uuid.UUID
    seats: list[str]
    status: str


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    freeze_startup_heap()  # as boxoffice_booking.main serves the API
    yield


def create_app() -> FastAPI:
    app = FastAPI(title="bench baseline", lifespan=lifespan)

    @app.post("/v1/bookings", status_code=201)
    def create_booking(body: HoldRequest) -> HoldEcho:
        return HoldEcho(
            id=uuid.uuid4(), showtime_id=body.showtime_id, seats=body.seats, status="PENDING"
        )

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    uvicorn.run(
        "bench.baseline_app:create_app",
        factory=True,
        host="127.0.0.1",
        port=int(os.environ["BOXOFFICE_API_PORT"]),
        workers=int(os.environ.get("BOXOFFICE_API_WORKERS", "1")),
        log_config=None,
        access_log=False,
        proxy_headers=True,
        timeout_graceful_shutdown=20,
    )


if __name__ == "__main__":
    main()
