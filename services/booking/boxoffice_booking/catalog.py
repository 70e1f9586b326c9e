"""Venues, screens with their seat maps, and showtimes (all SQL of the catalog lives here)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
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
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.types import Date

from boxoffice_booking.catalog_schemas import (
    PricePublic,
    RowPublic,
    ScreenPublic,
    SeatPublic,
    ShowtimePublic,
)
from boxoffice_booking.problems import (
    CatalogConflict,
    InvalidCatalog,
    NotFound,
    ShowtimeOverlap,
)

UNIQUE_VIOLATION = "23505"
EXCLUSION_VIOLATION = "23P01"


@contextmanager
def _integrity_as(problems: Mapping[str, Callable[[], Exception]]) -> Iterator[None]:
    """Turn a database constraint violation into the client's problem, by SQLSTATE."""
    try:
        yield
    except IntegrityError as exc:
        make = problems.get(getattr(exc.orig, "sqlstate", "") or "")
        if make is None:
            raise
        raise make() from exc


def create_venue(session: Session, name: str, timezone: str = "UTC") -> Venue:
    venue = Venue(id=uuid.uuid4(), name=name, timezone=timezone)
    session.add(venue)
    session.flush()
    return venue


def get_venue(session: Session, venue_id: uuid.UUID) -> Venue:
    venue = session.get(Venue, venue_id)
    if venue is None:
        raise NotFound(f"No venue {venue_id}.")
    return venue


def create_screen(
    session: Session,
    venue_id: uuid.UUID,
    name: str,
    rows: Mapping[str, int],
    categories: Mapping[str, str] | None = None,
    blocked: Sequence[str] = (),
    *,
    aisle_after: Sequence[str] = (),
    accessible: Sequence[str] = (),
) -> Screen:
    """A screen whose rows are named by letter with `rows[letter]` seats each.

    `categories` maps a row letter to its seat category (default `standard`); `blocked`,
    `aisle_after` and `accessible` list seat labels.
    """
    get_venue(session, venue_id)
    screen = Screen(id=uuid.uuid4(), venue_id=venue_id, name=name)
    session.add(screen)
    with _integrity_as(
        {UNIQUE_VIOLATION: lambda: CatalogConflict(f"The venue already has a screen {name!r}.")}
    ):
        session.flush()
    for row_label, count in rows.items():
        for number in range(1, count + 1):
            label = f"{row_label}{number}"
            session.add(
                Seat(
                    id=uuid.uuid4(),
                    screen_id=screen.id,
                    label=label,
                    row_label=row_label,
                    number=number,
                    category=(categories or {}).get(row_label, "standard"),
                    blocked=label in blocked,
                    aisle_after=label in aisle_after,
                    accessible=label in accessible,
                )
            )
    session.flush()
    return screen


def _ordered_seats(session: Session, screen_id: uuid.UUID) -> Sequence[Seat]:
    return session.scalars(
        select(Seat)
        .where(Seat.screen_id == screen_id)
        .order_by(func.length(Seat.row_label), Seat.row_label, Seat.number)
    ).all()


def get_screen(session: Session, screen_id: uuid.UUID) -> Screen:
    screen = session.get(Screen, screen_id)
    if screen is None:
        raise NotFound(f"No screen {screen_id}.")
    return screen


def screen_public(session: Session, screen: Screen) -> ScreenPublic:
    """The screen with its seat map, row by row."""
    rows: dict[str, list[SeatPublic]] = {}
    for seat in _ordered_seats(session, screen.id):
        rows.setdefault(seat.row_label, []).append(
            SeatPublic(
                label=seat.label,
                number=seat.number,
                category=seat.category,
                blocked=seat.blocked,
                aisle_after=seat.aisle_after,
                accessible=seat.accessible,
            )
        )
    seats = [seat for row in rows.values() for seat in row]
    return ScreenPublic(
        id=screen.id,
        venue_id=screen.venue_id,
        name=screen.name,
        capacity=sum(not seat.blocked for seat in seats),
        categories=sorted({seat.category for seat in seats}),
        rows=[RowPublic(label=label, seats=row) for label, row in rows.items()],
        created_at=screen.created_at,
    )


def create_showtime(
    session: Session,
    screen_id: uuid.UUID,
    film_title: str,
    starts_at: datetime,
    ends_at: datetime,
    prices: Mapping[str, int],
    currency: str = "INR",
) -> Showtime:
    """A showtime with one sellable row per seat of its screen; every category needs a price."""
    get_screen(session, screen_id)
    categories = set(session.scalars(select(Seat.category).where(Seat.screen_id == screen_id)))
    unpriced = sorted(categories - prices.keys())
    unknown = sorted(prices.keys() - categories)
    if unpriced or unknown:
        raise InvalidCatalog(
            "Price every seat category of the screen, and only those.",
            unpriced_categories=unpriced,
            unknown_categories=unknown,
        )
    showtime = Showtime(
        id=uuid.uuid4(),
        screen_id=screen_id,
        film_title=film_title,
        starts_at=starts_at,
        ends_at=ends_at,
        currency=currency,
    )
    session.add(showtime)
    with _integrity_as(
        {
            EXCLUSION_VIOLATION: lambda: ShowtimeOverlap(
                "Another showtime on this screen overlaps that time.", screen_id=str(screen_id)
            )
        }
    ):
        session.flush()
    for category, amount in prices.items():
        session.add(ShowtimePrice(showtime_id=showtime.id, category=category, amount_minor=amount))
    for seat in session.scalars(select(Seat).where(Seat.screen_id == screen_id)):
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
    return showtime


def get_showtime(session: Session, showtime_id: uuid.UUID) -> Showtime:
    showtime = session.scalars(
        select(Showtime)
        .where(Showtime.id == showtime_id)
        .options(selectinload(Showtime.prices), selectinload(Showtime.screen))
    ).one_or_none()
    if showtime is None:
        raise NotFound(f"No showtime {showtime_id}.")
    return showtime


def showtime_public(showtime: Showtime) -> ShowtimePublic:
    return ShowtimePublic(
        id=showtime.id,
        screen_id=showtime.screen_id,
        venue_id=showtime.screen.venue_id,
        film_title=showtime.film_title,
        starts_at=showtime.starts_at,
        ends_at=showtime.ends_at,
        currency=showtime.currency,
        prices=[
            PricePublic(category=p.category, amount_minor=p.amount_minor)
            for p in sorted(showtime.prices, key=lambda p: p.category)
        ],
        created_at=showtime.created_at,
    )


def showtimes_query(
    venue_id: uuid.UUID | None,
    screen_id: uuid.UUID | None,
    on_date: date | None,
    starts_after: datetime | None,
) -> Select[Showtime]:
    """Showtimes filtered by venue, screen, local date at the venue, and start time."""
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
