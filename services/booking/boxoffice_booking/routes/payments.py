"""Payment provider callbacks: authenticated by their signature, not an API key."""

from __future__ import annotations

from typing import Literal

from boxoffice_bookings import payments, refunds
from fastapi import Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from boxoffice_booking.deps import RuntimeDep, SessionDep, SessionRouter
from boxoffice_booking.problems import problem_responses

router = SessionRouter(prefix="/v1/payments", tags=["payments"])


class WebhookAck(BaseModel):
    status: Literal["processed", "duplicate", "ignored"]


@router.post("/webhooks/{provider}", responses=problem_responses(400, 401, 422, 503, common=()))
async def receive_webhook(
    provider: str, request: Request, session: SessionDep, runtime: RuntimeDep
) -> WebhookAck:
    """Verify the signature over the raw body, then apply the event once per event id.

    Unknown events are acknowledged and ignored, so the provider stops resending them.
    """
    body = await request.body()
    headers = dict(request.headers)

    def apply() -> payments.WebhookResult:
        result = payments.handle_webhook(session, provider, body, headers)
        session.commit()
        # Refunds the event made owed are asked of the provider after the commit; one that
        # fails stays pending for the reaper's reconciliation (the event is still applied).
        refunds.execute_refunds(result.settlement.refund_ids)
        return result

    result = await run_in_threadpool(apply)
    if result.showtime_id is not None and result.settlement.seat_changes:
        # On the event loop, so through the asyncio client: a slow Redis blocks no request.
        await runtime.seat_cache.mark(result.showtime_id, result.settlement.seat_changes)
    return WebhookAck(status=result.status)
