"""Showtimes and their live seat availability."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query, Response

from boxoffice_booking import catalog
from boxoffice_booking.auth import require_scope
from boxoffice_booking.availability import read_seat_map_json
from boxoffice_booking.catalog_schemas import ShowtimeCreate, ShowtimePublic
from boxoffice_booking.deps import SeatCacheDep, SessionDep, SessionRouter
from boxoffice_booking.pagination import Page, PageDep
from boxoffice_booking.problems import problem_responses
from boxoffice_booking.schemas import SeatMapPublic
from boxoffice_booking.validators import Rfc3339Date, Rfc3339Time

router = SessionRouter(prefix="/v1/showtimes", tags=["showtimes"])

READ = require_scope("bookings:read")
WRITE = require_scope("catalog:write")


@router.post(
    "",
    status_code=201,
    dependencies=[WRITE],
    responses=problem_responses(400, 404, 409),
)
def create_showtime(
    body: ShowtimeCreate, session: SessionDep, response: Response
) -> ShowtimePublic:
    """Schedule a film on a screen with a price per seat category; overlaps are a 409."""
    showtime = catalog.create_showtime(
        session,
        body.screen_id,
        body.film_title,
        body.starts_at,
        body.ends_at,
        body.prices,
        body.currency,
    )
    session.commit()
    response.headers["Location"] = f"/v1/showtimes/{showtime.id}"
    return catalog.showtime_public(catalog.get_showtime(session, showtime.id))


@router.get("", dependencies=[READ], responses=problem_responses())
def list_showtimes(
    session: SessionDep,
    page: PageDep,
    venue_id: uuid.UUID | None = None,
    screen_id: uuid.UUID | None = None,
    date: Annotated[
        Rfc3339Date | None, Query(description="A calendar day in the venue's time zone.")
    ] = None,
    starts_after: Rfc3339Time | None = None,
) -> Page[ShowtimePublic]:
    """Showtimes in start order, filtered by venue, screen, local date or start time."""
    rows, next_cursor = catalog.list_showtimes(
        session, page, venue_id, screen_id, date, starts_after
    )
    return Page(items=[catalog.showtime_public(s) for s in rows], next_cursor=next_cursor)


@router.get(
    "/{showtime_id}",
    dependencies=[READ],
    responses=problem_responses(404),
)
def read_showtime(showtime_id: uuid.UUID, session: SessionDep) -> ShowtimePublic:
    """A showtime with its prices."""
    return catalog.showtime_public(catalog.get_showtime(session, showtime_id))


@router.get(
    "/{showtime_id}/seats",
    dependencies=[READ],
    response_model=SeatMapPublic,
    responses=problem_responses(404),
)
def read_showtime_seats(
    showtime_id: uuid.UUID, session: SessionDep, cache: SeatCacheDep
) -> Response:
    """The seat map of a showtime with each seat available, held, sold or blocked."""
    body = read_seat_map_json(session, cache, showtime_id)
    session.rollback()  # return the connection before the answer is sent (see bookings)
    return Response(body, media_type="application/json")
