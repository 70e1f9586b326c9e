"""Venues and their screens (with seat maps)."""

from __future__ import annotations

import uuid

from boxoffice_db.models import Screen, Venue
from fastapi import Response

from boxoffice_booking import catalog
from boxoffice_booking.auth import require_scope
from boxoffice_booking.catalog_schemas import (
    ScreenCreate,
    ScreenPublic,
    ScreenSummary,
    VenueCreate,
    VenuePublic,
)
from boxoffice_booking.deps import SessionDep, SessionRouter
from boxoffice_booking.pagination import Page, PageDep
from boxoffice_booking.problems import problem_responses

router = SessionRouter(tags=["catalog"])

READ = require_scope("bookings:read")
WRITE = require_scope("catalog:write")


def venue_public(venue: Venue) -> VenuePublic:
    return VenuePublic(
        id=venue.id, name=venue.name, timezone=venue.timezone, created_at=venue.created_at
    )


def screen_summary(screen: Screen) -> ScreenSummary:
    return ScreenSummary(
        id=screen.id, venue_id=screen.venue_id, name=screen.name, created_at=screen.created_at
    )


@router.post(
    "/v1/venues",
    status_code=201,
    dependencies=[WRITE],
    responses=problem_responses(400, 409),
)
def create_venue(body: VenueCreate, session: SessionDep, response: Response) -> VenuePublic:
    """Create a venue (a cinema) in its IANA time zone."""
    venue = catalog.create_venue(session, body.name, body.timezone)
    session.commit()
    session.refresh(venue)
    response.headers["Location"] = f"/v1/venues/{venue.id}"
    return venue_public(venue)


@router.get("/v1/venues", dependencies=[READ], responses=problem_responses())
def list_venues(session: SessionDep, page: PageDep) -> Page[VenuePublic]:
    """Venues, oldest first, a page at a time."""
    rows, next_cursor = catalog.list_venues(session, page)
    return Page(items=[venue_public(v) for v in rows], next_cursor=next_cursor)


@router.get(
    "/v1/venues/{venue_id}",
    dependencies=[READ],
    responses=problem_responses(404),
)
def read_venue(venue_id: uuid.UUID, session: SessionDep) -> VenuePublic:
    """One venue."""
    return venue_public(catalog.get_venue(session, venue_id))


@router.post(
    "/v1/venues/{venue_id}/screens",
    status_code=201,
    dependencies=[WRITE],
    responses=problem_responses(400, 404, 409),
)
def create_screen(
    venue_id: uuid.UUID, body: ScreenCreate, session: SessionDep, response: Response
) -> ScreenPublic:
    """Add a screen with its seat map: rows of numbered seats, categories, blocked seats."""
    screen = catalog.create_screen(
        session,
        venue_id,
        body.name,
        {row.label: row.seats for row in body.rows},
        {row.label: row.category for row in body.rows},
        blocked=[f"{row.label}{n}" for row in body.rows for n in row.blocked],
        aisle_after=[f"{row.label}{n}" for row in body.rows for n in row.aisle_after],
        accessible=[f"{row.label}{n}" for row in body.rows for n in row.accessible],
    )
    session.commit()
    session.refresh(screen)
    response.headers["Location"] = f"/v1/screens/{screen.id}"
    return catalog.screen_public(session, screen)


@router.get(
    "/v1/venues/{venue_id}/screens",
    dependencies=[READ],
    responses=problem_responses(404),
)
def list_screens(venue_id: uuid.UUID, session: SessionDep, page: PageDep) -> Page[ScreenSummary]:
    """The screens of a venue; `GET /v1/screens/{id}` has each one's seat map."""
    rows, next_cursor = catalog.list_screens(session, venue_id, page)
    return Page(items=[screen_summary(s) for s in rows], next_cursor=next_cursor)


@router.get(
    "/v1/screens/{screen_id}",
    dependencies=[READ],
    responses=problem_responses(404),
)
def read_screen(screen_id: uuid.UUID, session: SessionDep) -> ScreenPublic:
    """A screen with its seat map, row by row."""
    return catalog.screen_public(session, catalog.get_screen(session, screen_id))
