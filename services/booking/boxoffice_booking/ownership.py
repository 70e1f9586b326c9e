"""Who may see and act on a booking: the client that created it, and operators.

Every booking belongs to the client (tenant) whose API key created it; all keys of that client
share it. Another client's booking answers exactly as a missing one does (`404`), so ids of
other clients' bookings cannot be probed. `bookings:read:all` reads every client's bookings;
`admin` reads and acts on them all.
"""

from __future__ import annotations

import uuid

from boxoffice_bookings import repository
from boxoffice_bookings.errors import BookingNotFound
from sqlalchemy.orm import Session

from boxoffice_booking.auth import Principal

READ_ALL = "bookings:read:all"
ADMIN = "admin"


def owner_filter(principal: Principal) -> uuid.UUID | None:
    """The owner a listing is limited to, or None for a principal who reads them all."""
    return None if principal.has(READ_ALL) else principal.owner_id


def may_read(principal: Principal, owner_id: uuid.UUID) -> bool:
    return owner_id == principal.owner_id or principal.has(READ_ALL)


def may_read_owned(principal: Principal, owner_id: uuid.UUID | None) -> bool:
    """`may_read` for what belongs to a booking's client, or to no client (None): operators'."""
    return principal.has(READ_ALL) or (owner_id is not None and owner_id == principal.owner_id)


def may_act(principal: Principal, owner_id: uuid.UUID) -> bool:
    return owner_id == principal.owner_id or ADMIN in principal.scopes


def active_holds_limit(principal: Principal, configured: int) -> int:
    """The most active holds the principal's client may have (0: no limit).

    The limit keeps callers from hoarding seats; operators' `admin` keys (the bootstrap key
    among them) are not limited, as they may already cancel anyone's booking.
    """
    return 0 if ADMIN in principal.scopes else configured


def not_found(booking_id: uuid.UUID) -> BookingNotFound:
    return BookingNotFound(f"No booking {booking_id}.")


def check_readable(session: Session, principal: Principal, booking_id: uuid.UUID) -> None:
    """BookingNotFound unless the booking exists and `principal` may read it."""
    owner = repository.booking_owner(session, booking_id)
    if owner is None or not may_read(principal, owner):
        raise not_found(booking_id)


def check_actionable(session: Session, principal: Principal, booking_id: uuid.UUID) -> None:
    """BookingNotFound unless the booking exists and `principal` may pay for or cancel it.

    A booking's owner never changes, so this check before the operation's own locked read
    cannot be raced.
    """
    owner = repository.booking_owner(session, booking_id)
    if owner is None or not may_act(principal, owner):
        raise not_found(booking_id)
