"""The catalog's SQL: venues, screens with their seats, showtimes with prices and seat rows.

The catalog service (catalog.py) keeps the rules and the public shapes; routes call it, never
this module's queries directly.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime

from boxoffice_db.models import (
    Screen,
    Seat,
    SeatState,
    Showtime,
    ShowtimePrice,
    ShowtimeSeat,
    Venue,
)
from sqlalchemy import Select, cast, func, select
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.types import Date

from boxoffice_booking.pagination import PageParams, paginate


def add_venue(session: Session, name: str, timezone: str) -> Venue:
    venue = Venue(id=uuid.uuid4(), name=name, timezone=timezone)
    session.add(venue)
    session.flush()
    return venue


def find_venue(session: Session, venue_id: uuid.UUID) -> Venue | None:
    return session.get(Venue, venue_id)


def venues_page(session: Session, page: PageParams) -> tuple[Sequence[Venue], str | None]:
    """Venues, oldest first, one page."""
    return paginate(
        session, select(Venue), page, Venue.created_at, Venue.id, lambda v: (v.created_at, v.id)
    )


def add_screen(session: Session, venue_id: uuid.UUID, name: str) -> Screen:
    """Insert a screen (flushed: a duplicate name raises IntegrityError here)."""
    screen = Screen(id=uuid.uuid4(), venue_id=venue_id, name=name)
    session.add(screen)
    session.flush()
    return screen


def add_seats(session: Session, seats: Iterable[Seat]) -> None:
    session.add_all(list(seats))
    session.flush()


def find_screen(session: Session, screen_id: uuid.UUID) -> Screen | None:
    return session.get(Screen, screen_id)


def screens_page(
    session: Session, venue_id: uuid.UUID, page: PageParams
) -> tuple[Sequence[Screen], str | None]:
    """A venue's screens, oldest first, one page."""
    return paginate(
        session,
        select(Screen).where(Screen.venue_id == venue_id),
        page,
        Screen.created_at,
        Screen.id,
        lambda s: (s.created_at, s.id),
    )


def screen_seats(session: Session, screen_id: uuid.UUID) -> Sequence[Seat]:
    """A screen's seats in seat-map order: row by row (A..Z, then AA..), by number."""
    return session.scalars(
        select(Seat)
        .where(Seat.screen_id == screen_id)
        .order_by(func.length(Seat.row_label), Seat.row_label, Seat.number)
    ).all()


def seat_categories(session: Session, screen_id: uuid.UUID) -> set[str]:
    return set(session.scalars(select(Seat.category).where(Seat.screen_id == screen_id)))


def add_showtime(session: Session, showtime: Showtime) -> None:
    """Insert a showtime (flushed: an overlap on its screen raises IntegrityError here)."""
    session.add(showtime)
    session.flush()


def add_prices_and_seats(session: Session, showtime: Showtime, prices: dict[str, int]) -> None:
    """The showtime's prices, and one sellable row per seat of its screen."""
    for category, amount in prices.items():
        session.add(ShowtimePrice(showtime_id=showtime.id, category=category, amount_minor=amount))
    for seat in session.scalars(select(Seat).where(Seat.screen_id == showtime.screen_id)):
        session.add(
            ShowtimeSeat(
                showtime_id=showtime.id,
                label=seat.label,
                seat_id=seat.id,
                category=seat.category,
                state=SeatState.BLOCKED if seat.blocked else SeatState.AVAILABLE,
            )
        )
    session.flush()


def find_showtime(session: Session, showtime_id: uuid.UUID) -> Showtime | None:
    """A showtime with its prices and screen loaded."""
    return session.scalars(
        select(Showtime)
        .where(Showtime.id == showtime_id)
        .options(selectinload(Showtime.prices), selectinload(Showtime.screen))
    ).one_or_none()


def find_showtime_id_by_film(session: Session, film_title: str) -> uuid.UUID | None:
    """Any one showtime of `film_title` (the demo seed's "already there?")."""
    return session.scalars(
        select(Showtime.id).where(Showtime.film_title == film_title).limit(1)
    ).first()


def showtimes_page(
    session: Session,
    page: PageParams,
    venue_id: uuid.UUID | None,
    screen_id: uuid.UUID | None,
    on_date: date | None,
    starts_after: datetime | None,
) -> tuple[Sequence[Showtime], str | None]:
    """Showtimes in start order, filtered; one page."""
    return paginate(
        session,
        _showtimes_query(venue_id, screen_id, on_date, starts_after),
        page,
        Showtime.starts_at,
        Showtime.id,
        lambda s: (s.starts_at, s.id),
    )


def _showtimes_query(
    venue_id: uuid.UUID | None,
    screen_id: uuid.UUID | None,
    on_date: date | None,
    starts_after: datetime | None,
) -> Select[Showtime]:
    stmt = (
        select(Showtime)
        .join(Screen, Screen.id == Showtime.screen_id)
        .options(selectinload(Showtime.prices), selectinload(Showtime.screen))
    )
    if venue_id is not None:
        stmt = stmt.where(Screen.venue_id == venue_id)
    if screen_id is not None:
        stmt = stmt.where(Showtime.screen_id == screen_id)
    if on_date is not None:
        # "Showtimes on 21 November" means the venue's calendar day, not UTC's.
        stmt = stmt.join(Venue, Venue.id == Screen.venue_id).where(
            cast(func.timezone(Venue.timezone, Showtime.starts_at), Date) == on_date
        )
    if starts_after is not None:
        stmt = stmt.where(Showtime.starts_at >= starts_after)
    return stmt
