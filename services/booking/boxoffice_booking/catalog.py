"""Venues, screens with their seat maps, and showtimes: the catalog's rules and public shapes.

Its SQL is in catalog_repository; routes call the functions here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime

from boxoffice_db.models import Screen, Seat, Showtime, Venue
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from boxoffice_booking import catalog_repository as repository
from boxoffice_booking.catalog_schemas import (
    PricePublic,
    RowPublic,
    ScreenPublic,
    SeatPublic,
    ShowtimePublic,
)
from boxoffice_booking.pagination import PageParams
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
    return repository.add_venue(session, name, timezone)


def list_venues(session: Session, page: PageParams) -> tuple[Sequence[Venue], str | None]:
    return repository.venues_page(session, page)


def get_venue(session: Session, venue_id: uuid.UUID) -> Venue:
    venue = repository.find_venue(session, venue_id)
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
    with _integrity_as(
        {UNIQUE_VIOLATION: lambda: CatalogConflict(f"The venue already has a screen {name!r}.")}
    ):
        screen = repository.add_screen(session, venue_id, name)
    repository.add_seats(
        session,
        (
            Seat(
                id=uuid.uuid4(),
                screen_id=screen.id,
                label=f"{row_label}{number}",
                row_label=row_label,
                number=number,
                category=(categories or {}).get(row_label, "standard"),
                blocked=f"{row_label}{number}" in blocked,
                aisle_after=f"{row_label}{number}" in aisle_after,
                accessible=f"{row_label}{number}" in accessible,
            )
            for row_label, count in rows.items()
            for number in range(1, count + 1)
        ),
    )
    return screen


def list_screens(
    session: Session, venue_id: uuid.UUID, page: PageParams
) -> tuple[Sequence[Screen], str | None]:
    """A venue's screens (404 for an unknown venue)."""
    get_venue(session, venue_id)
    return repository.screens_page(session, venue_id, page)


def get_screen(session: Session, screen_id: uuid.UUID) -> Screen:
    screen = repository.find_screen(session, screen_id)
    if screen is None:
        raise NotFound(f"No screen {screen_id}.")
    return screen


def screen_public(session: Session, screen: Screen) -> ScreenPublic:
    """The screen with its seat map, row by row."""
    rows: dict[str, list[SeatPublic]] = {}
    for seat in repository.screen_seats(session, screen.id):
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
    categories = repository.seat_categories(session, screen_id)
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
    with _integrity_as(
        {
            EXCLUSION_VIOLATION: lambda: ShowtimeOverlap(
                "Another showtime on this screen overlaps that time.", screen_id=str(screen_id)
            )
        }
    ):
        repository.add_showtime(session, showtime)
    repository.add_prices_and_seats(session, showtime, dict(prices))
    return showtime


def get_showtime(session: Session, showtime_id: uuid.UUID) -> Showtime:
    showtime = repository.find_showtime(session, showtime_id)
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


def list_showtimes(
    session: Session,
    page: PageParams,
    venue_id: uuid.UUID | None = None,
    screen_id: uuid.UUID | None = None,
    on_date: date | None = None,
    starts_after: datetime | None = None,
) -> tuple[Sequence[Showtime], str | None]:
    """Showtimes filtered by venue, screen, local date at the venue, and start time."""
    return repository.showtimes_page(session, page, venue_id, screen_id, on_date, starts_after)
