"""Holding seats: one statement (`seat_repository.HOLD_SQL`) on an autocommit asyncio connection."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from boxoffice_db.aio import AsyncConn
from boxoffice_db.models import BOOTSTRAP_OWNER_ID, BookingStatus, SeatState

from boxoffice_bookings import seat_repository
from boxoffice_bookings.errors import (
    ActiveHoldsLimit,
    InvalidSeats,
    SeatsUnavailable,
    ShowtimeNotFound,
)

REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
# Each random byte picks a letter by its low five bits: 32 letters, so every one is as likely.
_BYTE_TO_LETTER = bytes(ord(REFERENCE_ALPHABET[b % 32]) for b in range(256))


def new_reference() -> str:
    """Eight letters, 40 random bits, from one read of the OS's random source.

    (`secrets.choice` eight times read it eight times, a `getrandom` call each: 12.8 µs a
    hold in-process against 0.54 µs, and more on a busy machine.)
    """
    return secrets.token_bytes(8).translate(_BYTE_TO_LETTER).decode("ascii")


@dataclass(frozen=True, slots=True)
class HeldSeat:
    label: str
    category: str
    price_minor: int


@dataclass(frozen=True, slots=True)
class Held:
    """The PENDING booking a hold made, as HOLD_SQL wrote it.

    A plain record rather than an ORM `Booking`: it is made for every hold and only answered
    (building the ORM object and its seats cost more than the answer, issue 18). Its fields
    are the `Booking` columns an answer shows.
    """

    id: uuid.UUID
    reference: str
    showtime_id: uuid.UUID
    customer_email: str
    customer_phone: str | None
    sms_opt_out: bool
    owner_id: uuid.UUID
    total_minor: int
    currency: str
    expires_at: datetime
    created_at: datetime
    seats: list[HeldSeat]
    status: BookingStatus = BookingStatus.PENDING
    confirmed_at: datetime | None = None
    expired_at: datetime | None = None
    cancelled_at: datetime | None = None


class ClaimNotTaken(Exception):
    """The hold's statement did not take its Idempotency-Key: another request has it (its
    answer stored or still coming). Nothing was written."""


@dataclass
class KeyClaim:
    """An Idempotency-Key claim for the hold's own statement to make (`seat_repository.hold_sql`).

    `sql` is an INSERT … RETURNING that returns a row only if it took the key, `params` its
    parameters (named apart from the hold's). `taken` is None until the statement has run.
    """

    sql: str
    params: dict[str, Any]
    taken: bool | None = None


@dataclass(frozen=True)
class HoldRequest:
    """A validated hold: what HOLD_SQL needs, with the new booking's id and reference."""

    showtime_id: uuid.UUID
    labels: list[str]
    email: str
    phone: str | None
    ttl_seconds: int
    sms_opt_out: bool
    booking_id: uuid.UUID = field(default_factory=uuid.uuid4)
    reference: str = field(default_factory=new_reference)
    # The client whose API key asked for the hold; only its keys see the booking.
    owner_id: uuid.UUID = BOOTSTRAP_OWNER_ID
    # Most PENDING, unexpired bookings the client may have with this one; 0 is no limit.
    max_active_holds: int = 0

    @classmethod
    def checked(
        cls,
        showtime_id: uuid.UUID,
        labels: list[str],
        email: str,
        phone: str | None,
        ttl_seconds: int,
        max_seats: int,
        sms_opt_out: bool = False,
        owner_id: uuid.UUID = BOOTSTRAP_OWNER_ID,
        max_active_holds: int = 0,
    ) -> HoldRequest:
        if len(set(labels)) != len(labels):
            raise InvalidSeats("A seat is listed twice.", seats=sorted(labels))
        if len(labels) > max_seats:
            raise InvalidSeats(f"At most {max_seats} seats can be held at once.", seats=labels)
        return cls(
            showtime_id,
            list(labels),
            str(email),
            phone,
            ttl_seconds,
            sms_opt_out,
            owner_id=owner_id,
            max_active_holds=max_active_holds,
        )

    def params(self) -> dict[str, Any]:
        return {
            "showtime_id": self.showtime_id,
            "labels": self.labels,
            "n": len(self.labels),
            "booking_id": self.booking_id,
            "reference": self.reference,
            "email": self.email,
            "phone": self.phone,
            "sms_opt_out": self.sms_opt_out,
            "owner_id": self.owner_id,
            "max_active_holds": self.max_active_holds,
            "ttl": self.ttl_seconds,
        }

    def outcome(self, rows: Sequence[Any]) -> Held | None:
        """The booking HOLD_SQL made, or None if it refused (see `refusal`)."""
        made = rows[0] if rows and rows[0].expires_at is not None else None
        if made is None:
            return None
        if made.held != len(self.labels) or made.priced != len(self.labels):
            # The locks make this impossible; never answer 201 for a partial hold.
            raise RuntimeError(f"hold of {self.labels} took {made.held}, priced {made.priced}")
        return Held(
            id=self.booking_id,
            reference=self.reference,
            showtime_id=self.showtime_id,
            customer_email=self.email,
            customer_phone=self.phone,
            sms_opt_out=self.sms_opt_out,
            owner_id=self.owner_id,
            total_minor=made.total_minor,
            currency=made.currency,
            expires_at=made.expires_at,
            created_at=made.created_at,
            seats=[HeldSeat(r.label, r.category, r.amount_minor) for r in rows],
        )

    def refusal(self, rows: Sequence[Any], showtime_exists: bool | None) -> Exception:
        """Why HOLD_SQL made no booking: the client's active holds at their limit, or taken,
        unknown, blocked or unpriced seats.

        `showtime_exists` is only needed (and only looked up) when no requested seat exists.
        """
        if rows and not rows[0].allowed:
            return ActiveHoldsLimit(
                f"This client has reached its limit of {self.max_active_holds} active holds: "
                "pay for or cancel one, or wait for one to expire.",
                limit=self.max_active_holds,
            )
        taken = sorted(r.label for r in rows if not r.free and r.state != SeatState.BLOCKED)
        if taken:
            return SeatsUnavailable(f"Seats already taken: {', '.join(taken)}.", seats=taken)
        if not rows and showtime_exists is False:
            return ShowtimeNotFound(f"No showtime {self.showtime_id}.")
        unknown = sorted(set(self.labels) - {r.label for r in rows})
        if unknown:
            return InvalidSeats(f"Unknown seats: {', '.join(unknown)}.", seats=unknown)
        blocked = sorted(r.label for r in rows if r.state == SeatState.BLOCKED)
        if blocked:
            return InvalidSeats(f"Seats not for sale: {', '.join(blocked)}.", seats=blocked)
        unpriced = sorted(r.label for r in rows if r.amount_minor is None)
        if unpriced:
            return InvalidSeats(f"Seats have no price: {', '.join(unpriced)}.", seats=unpriced)
        return RuntimeError(f"hold of {self.labels} was refused for no known reason")


async def hold_seats(conn: AsyncConn, request: HoldRequest, claim: KeyClaim | None = None) -> Held:
    """Hold the seats for a new PENDING booking, or raise naming the seats someone else has.

    `conn` is in autocommit mode: the one statement is the transaction. The returned record
    carries what the hold wrote. With `claim`, the statement claims the request's
    Idempotency-Key first and holds only if it took it (ClaimNotTaken if not); the claim is
    then committed with the hold or its refusal.
    """
    if claim is None:
        rows = await seat_repository.run_hold(conn, request.params())
    else:
        rows = await seat_repository.run_hold(conn, request.params() | claim.params, claim.sql)
        claim.taken = bool(rows[0].claimed)
        if not claim.taken:
            raise ClaimNotTaken()
        rows = [row for row in rows if row.label is not None]
    booking = request.outcome(rows)
    if booking is None:
        exists = None if rows else await seat_repository.showtime_exists(conn, request.showtime_id)
        raise request.refusal(rows, exists)
    return booking
