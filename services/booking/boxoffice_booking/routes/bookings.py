"""Holds, payments and cancellations."""

from __future__ import annotations

import uuid
from typing import Annotated

from boxoffice_bookings import cancellation, holds, payments, refunds, repository
from boxoffice_bookings.errors import (
    ActiveHoldsLimit,
    BookingNotFound,
    HoldExpired,
    InvalidSeats,
    SeatsUnavailable,
    ShowtimeNotFound,
)
from boxoffice_bookings.payments import Settled
from boxoffice_db.engine import get_sessionmaker
from boxoffice_db.models import Booking, BookingStatus, Payment, SeatState
from boxoffice_settings import Settings
from fastapi import Query, Request, Response
from prometheus_client import Counter
from pydantic import EmailStr
from starlette.concurrency import run_in_threadpool
from starlette.types import Scope

from boxoffice_booking.auth import Principal, require_scope
from boxoffice_booking.deps import (
    KEY_CLAIM,
    AsyncRuntime,
    RuntimeDep,
    SeatCacheDep,
    SessionDep,
    SessionRouter,
    SettingsDep,
    connection_for,
)
from boxoffice_booking.ownership import (
    active_holds_limit,
    check_actionable,
    check_readable,
    may_act,
    may_read,
    owner_filter,
)
from boxoffice_booking.pagination import Page, PageDep, paginate
from boxoffice_booking.problems import problem_responses
from boxoffice_booking.schemas import (
    BookingCreate,
    BookingPublic,
    BookingSeatPublic,
    BookingStatusFilter,
    CustomerPublic,
    PaymentCreate,
    PaymentPublic,
    PaymentSummary,
)
from boxoffice_booking.seat_cache import (
    HOLD_MARKED,
    HOLD_REQUEST,
    RESERVATION,
    Reservation,
    encode_state,
)

router = SessionRouter(prefix="/v1/bookings", tags=["bookings"])

HOLDS = Counter("boxoffice_holds_total", "Hold attempts by result", ["result"])
CONFIRMATIONS = Counter("boxoffice_confirmations_total", "Bookings confirmed")
CANCELLATIONS = Counter("boxoffice_cancellations_total", "Bookings cancelled")
REVENUE = Counter(
    "boxoffice_revenue_minor", "Payments captured, in minor units (paise, cents)", ["currency"]
)

# Every handler ends its transaction (commit or rollback) before it returns, so no pooled
# connection stays checked out while FastAPI validates the answer in another thread-pool job
# (found by `make bench`; see docs/benchmarks.md).
# Handlers take the principal: what a key sees is its client's bookings (see ownership).
ReaderDep = Annotated[Principal, require_scope("bookings:read")]
WriterDep = Annotated[Principal, require_scope("bookings:write")]


def booking_public(booking: Booking | holds.Held) -> BookingPublic:
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
        customer=CustomerPublic(
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


def held_states(booking: holds.Held) -> dict[str, str]:
    """The seat-cache entries of a fresh hold."""
    return dict.fromkeys(
        (s.label for s in booking.seats), encode_state(SeatState.HELD, booking.expires_at)
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


def hold_request(
    body: BookingCreate, principal: Principal, settings: Settings
) -> holds.HoldRequest:
    """The hold `body` asks for, checked (InvalidSeats: a seat twice, too many seats)."""
    return holds.HoldRequest.checked(
        body.showtime_id,
        body.seats,
        body.customer.email,
        body.customer.phone,
        settings.hold_ttl_seconds,
        settings.max_seats_per_hold,
        sms_opt_out=body.customer.sms_opt_out,
        owner_id=principal.owner_id,
        max_active_holds=active_holds_limit(principal, settings.max_active_holds_per_client),
    )


async def hold_for(scope: Scope, runtime: AsyncRuntime, hold: holds.HoldRequest) -> holds.Held:
    """Hold the seats a request asks for (the handler's, and the hold guard's for a request it
    reserved: boxoffice_booking.hold_guard); raise the problem that answers it otherwise.

    `scope` says what the guard and the Idempotency-Key middleware did before: the seats'
    reservation, the connection lent and the key's claim for the statement to make.
    """
    cache = runtime.seat_cache
    reservation = scope.get(RESERVATION)
    if isinstance(reservation, Reservation):
        # The hold guard reserved the seats in the cache: nobody else's hold was in flight
        # and the cache knew none of them taken.
        taken: list[str] | None = [] if reservation.cache_ready else None
    else:
        taken = await cache.taken(hold.showtime_id, hold.labels)
    if taken:
        # Turned away before touching PostgreSQL; a stale "free" is still checked there.
        HOLDS.labels("conflict_cached").inc()
        raise SeatsUnavailable(f"Seats already taken: {', '.join(taken)}.", seats=taken)
    # The connection the Idempotency-Key middleware lends, with the key's claim for the hold's
    # statement to make (deps.LENT_CONNECTION, deps.KEY_CLAIM).
    claim = scope.get(KEY_CLAIM)
    async with connection_for(scope, runtime.pool) as conn:
        try:
            booking = await holds.hold_seats(
                conn, hold, claim if isinstance(claim, holds.KeyClaim) else None
            )
        except SeatsUnavailable:
            HOLDS.labels("conflict").inc()
            if taken is None:
                await cache.rebuild_soon(conn, hold.showtime_id)
            raise
        except (InvalidSeats, ShowtimeNotFound):
            HOLDS.labels("rejected").inc()
            raise
        except ActiveHoldsLimit:
            HOLDS.labels("limited").inc()
            raise
        HOLDS.labels("created").inc()
        await cache.mark(booking.showtime_id, held_states(booking))
        scope[HOLD_MARKED] = True
        if taken is None:
            await cache.rebuild_soon(conn, booking.showtime_id)
    return booking


@router.post(
    "",
    status_code=201,
    responses=problem_responses(400, 404, 409),
)
async def create_booking(
    body: BookingCreate,
    principal: WriterDep,
    settings: SettingsDep,
    runtime: RuntimeDep,
    http_request: Request,
    response: Response,
) -> BookingPublic:
    """Hold seats for `hold_ttl_seconds`; 409 names the seats somebody else has, or says the
    client already has `max_active_holds_per_client` active holds."""
    # The API's busiest request runs on the event loop end to end (see boxoffice_db.aio).
    checked = http_request.scope.get(HOLD_REQUEST)  # by the hold guard, from this body
    if isinstance(checked, holds.HoldRequest):
        hold = checked
    else:
        try:
            hold = hold_request(body, principal, settings)
        except InvalidSeats:
            HOLDS.labels("rejected").inc()
            raise
    booking = await hold_for(http_request.scope, runtime, hold)
    response.headers["Location"] = f"/v1/bookings/{booking.id}"
    return booking_public(booking)


@router.get("", responses=problem_responses())
def list_bookings(
    principal: ReaderDep,
    session: SessionDep,
    page: PageDep,
    customer_email: Annotated[EmailStr | None, Query()] = None,
    status: BookingStatusFilter | None = None,
    showtime_id: uuid.UUID | None = None,
) -> Page[BookingPublic]:
    """Your client's bookings, newest first, filtered by customer email, status or showtime.

    With `bookings:read:all` (or `admin`), every client's bookings.
    """
    rows, next_cursor = paginate(
        session,
        repository.bookings_query(
            customer_email,
            BookingStatus(status.value) if status else None,
            showtime_id,
            owner_filter(principal),
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
    responses=problem_responses(404),
)
def read_booking(booking_id: uuid.UUID, principal: ReaderDep, session: SessionDep) -> BookingPublic:
    """A booking with its seats and status (another client's booking is a 404)."""
    booking = payments.get_booking(session, booking_id)
    visible = may_read(principal, booking.owner_id)
    public = booking_public(booking)
    session.rollback()
    if not visible:
        raise BookingNotFound(f"No booking {booking_id}.")
    return public


@router.post(
    "/{booking_id}/payments",
    status_code=201,
    responses={
        200: {"model": PaymentPublic, "description": "The payment already in progress."},
        **problem_responses(400, 404, 409, 503),
    },
)
async def create_payment(
    booking_id: uuid.UUID,
    body: PaymentCreate,
    principal: WriterDep,
    runtime: RuntimeDep,
    response: Response,
) -> PaymentPublic:
    """Pay for a held booking; when the payment is captured the booking is CONFIRMED.

    A payment captured after the hold lapsed re-acquires the seats if they are still free;
    if not, it is refunded at once and the answer is a 409 `hold-expired`.
    """
    public, reused = await pay_for(runtime, principal, booking_id, body)
    if reused:
        response.status_code = 200
    response.headers["Location"] = payments_location(booking_id)
    return public


def payments_location(booking_id: uuid.UUID) -> str:
    return f"/v1/bookings/{booking_id}/payments"


async def pay_for(
    runtime: AsyncRuntime, principal: Principal, booking_id: uuid.UUID, body: PaymentCreate
) -> tuple[PaymentPublic, bool]:
    """`create_payment`'s own code (also run without FastAPI, `payment_path`): the answer, and
    whether it is an order already in progress (a 200, not a 201)."""

    def pay() -> tuple[payments.PaymentResult, PaymentPublic, uuid.UUID]:
        # One thread-pool job from the session's start to the answer's fields, the session's
        # transaction ended and the session closed in it (a sync handler with a session
        # dependency cost three jobs: the handler, FastAPI's validation of its answer, the
        # session's close).
        with get_sessionmaker()() as session:
            try:
                result = payments.start_payment(
                    session,
                    booking_id,
                    body.provider,
                    body.outcome,
                    may_pay=lambda owner: may_act(principal, owner),
                )
                session.commit()
                # Refunds are asked of the provider after the commit; one that fails stays
                # pending and the reaper's reconciliation settles it.
                if result.settlement.refund_ids:
                    refunds.execute_refunds(result.settlement.refund_ids)
                    session.refresh(result.payment)  # what the refund recorded
                public = PaymentPublic(
                    **payment_summary(result.payment).model_dump(),
                    checkout=dict(result.checkout),
                    booking=booking_public(result.booking),
                )
                # Read here: the booking may not be loaded once its session is closed.
                return result, public, public.booking.showtime_id
            finally:
                if session.in_transaction():
                    session.rollback()

    result, public, showtime_id = await run_in_threadpool(pay)
    if result.settlement.seat_changes:
        await runtime.seat_cache.mark(showtime_id, result.settlement.seat_changes)
    if result.settled is Settled.CONFIRMED:
        CONFIRMATIONS.inc()
        REVENUE.labels(public.currency).inc(public.amount_minor)
    if result.settled is Settled.REFUNDED:
        raise HoldExpired(
            f"The hold of booking {public.booking.reference} expired and its seats were "
            "taken; the payment is refunded.",
            payment_id=str(public.id),
        )
    return public, result.reused


@router.get(
    "/{booking_id}/payments",
    responses=problem_responses(404),
)
def list_payments(
    booking_id: uuid.UUID, principal: ReaderDep, session: SessionDep
) -> list[PaymentSummary]:
    """Every payment attempt of a booking, oldest first."""
    check_readable(session, principal, booking_id)
    public = [payment_summary(p) for p in payments.payments_of(session, booking_id)]
    session.rollback()
    return public


@router.post(
    "/{booking_id}/cancel",
    responses=problem_responses(400, 404, 409, 503),
)
def cancel_booking(
    booking_id: uuid.UUID,
    principal: WriterDep,
    session: SessionDep,
    settings: SettingsDep,
    cache: SeatCacheDep,
) -> BookingPublic:
    """Cancel a booking; its seats return to sale at once, a paid one is refunded.

    A confirmed booking can be cancelled until `cancel_cutoff_minutes` before the showtime.
    """
    check_actionable(session, principal, booking_id)
    cancelled = cancellation.cancel_booking(session, booking_id, settings.cancel_cutoff_minutes)
    session.commit()
    cache.mark(cancelled.booking.showtime_id, cancelled.seat_changes)
    refunds.execute_refunds(cancelled.refund_ids)
    CANCELLATIONS.inc()
    public = booking_public(cancelled.booking)
    session.rollback()
    return public
