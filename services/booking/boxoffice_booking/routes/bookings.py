"""Holds, payments and cancellations."""

from __future__ import annotations

import uuid
from typing import Annotated

from boxoffice_db.models import Booking, BookingStatus, Payment
from fastapi import APIRouter, Query, Response
from prometheus_client import Counter
from pydantic import EmailStr

from boxoffice_booking import holds, payments
from boxoffice_booking.auth import require_scope
from boxoffice_booking.deps import RuntimeDep, SeatCacheDep, SessionDep, SettingsDep
from boxoffice_booking.pagination import Page, PageDep, paginate
from boxoffice_booking.payments import Settled
from boxoffice_booking.problems import (
    HoldExpired,
    InvalidSeats,
    NotFound,
    SeatsUnavailable,
    problem_responses,
)
from boxoffice_booking.schemas import (
    BookingCreate,
    BookingPublic,
    BookingSeatPublic,
    BookingStatusFilter,
    Customer,
    PaymentCreate,
    PaymentPublic,
    PaymentSummary,
)

router = APIRouter(prefix="/v1/bookings", tags=["bookings"])

HOLDS = Counter("boxoffice_holds_total", "Hold attempts by result", ["result"])
CONFIRMATIONS = Counter("boxoffice_confirmations_total", "Bookings confirmed")
CANCELLATIONS = Counter("boxoffice_cancellations_total", "Bookings cancelled")
REVENUE = Counter(
    "boxoffice_revenue_minor", "Payments captured, in minor units (paise, cents)", ["currency"]
)

# Every handler ends its transaction (commit or rollback) before it returns, so no pooled
# connection stays checked out while FastAPI validates the answer in another thread-pool job
# (found by `make bench`; see docs/benchmarks.md).
READ = require_scope("bookings:read")
WRITE = require_scope("bookings:write")


def booking_public(booking: Booking) -> BookingPublic:
    return BookingPublic(
        id=booking.id,
        reference=booking.reference,
        status=booking.status.value,
        showtime_id=booking.showtime_id,
        seats=[
            BookingSeatPublic(label=s.label, category=s.category, price_minor=s.price_minor)
            for s in booking.seats
        ],
        total_minor=booking.total_minor,
        currency=booking.currency,
        customer=Customer(
            email=booking.customer_email,
            phone=booking.customer_phone,
            sms_opt_out=booking.sms_opt_out,
        ),
        expires_at=booking.expires_at,
        created_at=booking.created_at,
        confirmed_at=booking.confirmed_at,
        expired_at=booking.expired_at,
        cancelled_at=booking.cancelled_at,
    )


def payment_summary(payment: Payment) -> PaymentSummary:
    return PaymentSummary(
        id=payment.id,
        booking_id=payment.booking_id,
        provider=payment.provider,
        status=payment.status,
        amount_minor=payment.amount_minor,
        currency=payment.currency,
        provider_reference=payment.provider_reference,
        refunded_minor=payment.refunded_minor,
        created_at=payment.created_at,
    )


@router.post(
    "",
    status_code=201,
    dependencies=[WRITE],  # type: ignore[list-item]
    responses=problem_responses(400, 404, 409),
)
async def create_booking(
    body: BookingCreate,
    settings: SettingsDep,
    runtime: RuntimeDep,
    response: Response,
) -> BookingPublic:
    """Hold seats for `hold_ttl_seconds`; 409 names the seats somebody else has."""
    # The API's busiest request runs on the event loop end to end (see boxoffice_db.aio).
    try:
        request = holds.HoldRequest.checked(
            body.showtime_id,
            body.seats,
            body.customer.email,
            body.customer.phone,
            settings.hold_ttl_seconds,
            settings.max_seats_per_hold,
            sms_opt_out=body.customer.sms_opt_out,
        )
    except InvalidSeats:
        HOLDS.labels("rejected").inc()
        raise
    cache = runtime.seat_cache
    taken = await cache.taken(body.showtime_id, body.seats)
    if taken:
        # Turned away before touching PostgreSQL; a stale "free" is still checked there.
        HOLDS.labels("conflict_cached").inc()
        raise SeatsUnavailable(f"Seats already taken: {', '.join(taken)}.", seats=taken)
    async with runtime.pool.connection() as conn:
        try:
            booking = await holds.hold_seats_async(conn, request)
        except SeatsUnavailable:
            HOLDS.labels("conflict").inc()
            if taken is None:
                await cache.rebuild_soon(conn, body.showtime_id)
            raise
        except (InvalidSeats, NotFound):
            HOLDS.labels("rejected").inc()
            raise
        HOLDS.labels("created").inc()
        await cache.mark(booking.showtime_id, holds.held_states(booking))
        if taken is None:
            await cache.rebuild_soon(conn, booking.showtime_id)
    response.headers["Location"] = f"/v1/bookings/{booking.id}"
    return booking_public(booking)


@router.get("", dependencies=[READ], responses=problem_responses())  # type: ignore[list-item]
def list_bookings(
    session: SessionDep,
    page: PageDep,
    customer_email: Annotated[EmailStr | None, Query()] = None,
    status: BookingStatusFilter | None = None,
    showtime_id: uuid.UUID | None = None,
) -> Page[BookingPublic]:
    """Bookings, newest first, filtered by customer email, status or showtime."""
    rows, next_cursor = paginate(
        session,
        holds.bookings_query(
            customer_email, BookingStatus(status.value) if status else None, showtime_id
        ),
        page,
        Booking.created_at,
        Booking.id,
        lambda b: (b.created_at, b.id),
        descending=True,
    )
    public: Page[BookingPublic] = Page(
        items=[booking_public(b) for b in rows], next_cursor=next_cursor
    )
    session.rollback()
    return public


@router.get(
    "/{booking_id}",
    dependencies=[READ],  # type: ignore[list-item]
    responses=problem_responses(404),
)
def read_booking(booking_id: uuid.UUID, session: SessionDep) -> BookingPublic:
    """A booking with its seats and status."""
    public = booking_public(holds.get_booking(session, booking_id))
    session.rollback()
    return public


@router.post(
    "/{booking_id}/payments",
    status_code=201,
    dependencies=[WRITE],  # type: ignore[list-item]
    responses={
        200: {"model": PaymentPublic, "description": "The payment already in progress."},
        **problem_responses(400, 404, 409, 503),
    },
)
def create_payment(
    booking_id: uuid.UUID,
    body: PaymentCreate,
    session: SessionDep,
    cache: SeatCacheDep,
    response: Response,
) -> PaymentPublic:
    """Pay for a held booking; when the payment is captured the booking is CONFIRMED.

    A payment captured after the hold lapsed re-acquires the seats if they are still free;
    if not, it is refunded at once and the answer is a 409 `hold-expired`.
    """
    result = payments.start_payment(session, booking_id, body.provider, body.outcome)
    session.commit()
    cache.mark(result.booking.showtime_id, result.seat_changes)
    if result.settled is Settled.CONFIRMED:
        CONFIRMATIONS.inc()
        REVENUE.labels(result.payment.currency).inc(result.payment.amount_minor)
    if result.settled is Settled.REFUNDED:
        raise HoldExpired(
            f"The hold of booking {result.booking.reference} expired and its seats were "
            "taken; the payment was refunded.",
            payment_id=str(result.payment.id),
        )
    if result.reused:
        response.status_code = 200
    response.headers["Location"] = f"/v1/bookings/{booking_id}/payments"
    return PaymentPublic(
        **payment_summary(result.payment).model_dump(),
        checkout=dict(result.checkout),
        booking=booking_public(result.booking),
    )


@router.get(
    "/{booking_id}/payments",
    dependencies=[READ],  # type: ignore[list-item]
    responses=problem_responses(404),
)
def list_payments(booking_id: uuid.UUID, session: SessionDep) -> list[PaymentSummary]:
    """Every payment attempt of a booking, oldest first."""
    public = [payment_summary(p) for p in payments.payments_of(session, booking_id)]
    session.rollback()
    return public


@router.post(
    "/{booking_id}/cancel",
    dependencies=[WRITE],  # type: ignore[list-item]
    responses=problem_responses(400, 404, 409, 503),
)
def cancel_booking(
    booking_id: uuid.UUID, session: SessionDep, settings: SettingsDep, cache: SeatCacheDep
) -> BookingPublic:
    """Cancel a booking; its seats return to sale at once, a paid one is refunded.

    A confirmed booking can be cancelled until `cancel_cutoff_minutes` before the showtime.
    """
    booking, changes = payments.cancel_booking(session, booking_id, settings.cancel_cutoff_minutes)
    session.commit()
    cache.mark(booking.showtime_id, changes)
    CANCELLATIONS.inc()
    return booking_public(booking)
