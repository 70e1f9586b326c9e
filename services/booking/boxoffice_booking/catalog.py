"""Venues, screens with their seat maps, and showtimes."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime

from boxoffice_db.models import (
    Screen,
    Seat,
    SeatState,
    Showtime,
    ShowtimePrice,
    ShowtimeSeat,
    Venue,
)
from sqlalchemy import case, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import func

from boxoffice_booking.problems import NotFound
from boxoffice_booking.schemas import SeatMapPublic, SeatStatePublic


def create_venue(session: Session, name: str, timezone: str = "UTC") -> Venue:
    venue = Venue(id=uuid.uuid4(), name=name, timezone=timezone)
    session.add(venue)
    session.flush()
    return venue


def create_screen(
    session: Session,
    venue_id: uuid.UUID,
    name: str,
    rows: Mapping[str, int],
    categories: Mapping[str, str] | None = None,
    blocked: Sequence[str] = (),
) -> Screen:
    """A screen whose rows are named by letter with `rows[letter]` seats each.

    `categories` maps a row letter to its seat category (default `standard`).
    """
    screen = Screen(id=uuid.uuid4(), venue_id=venue_id, name=name)
    session.add(screen)
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
                )
            )
    session.flush()
    return screen


def create_showtime(
    session: Session,
    screen_id: uuid.UUID,
    film_title: str,
    starts_at: datetime,
    ends_at: datetime,
    prices: Mapping[str, int],
    currency: str = "INR",
) -> Showtime:
    """A showtime with one sellable row per seat of its screen."""
    showtime = Showtime(
        id=uuid.uuid4(),
        screen_id=screen_id,
        film_title=film_title,
        starts_at=starts_at,
        ends_at=ends_at,
        currency=currency,
    )
    session.add(showtime)
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


def read_seat_map(session: Session, showtime_id: uuid.UUID) -> SeatMapPublic:
    """Each seat available, held or sold; a lapsed hold already reads as available."""
    showtime = session.get(Showtime, showtime_id)
    if showtime is None:
        raise NotFound(f"No showtime {showtime_id}.")
    effective_state = case(
        (
            (ShowtimeSeat.state == SeatState.HELD) & (ShowtimeSeat.hold_expires_at <= func.now()),
            SeatState.AVAILABLE.value,
        ),
        else_=ShowtimeSeat.state.cast(Seat.label.type),
    )
    rows = session.execute(
        select(
            ShowtimeSeat.label,
            Seat.row_label,
            Seat.number,
            ShowtimeSeat.category,
            effective_state.label("status"),
            ShowtimePrice.amount_minor,
        )
        .join(Seat, Seat.id == ShowtimeSeat.seat_id)
        .outerjoin(
            ShowtimePrice,
            (ShowtimePrice.showtime_id == ShowtimeSeat.showtime_id)
            & (ShowtimePrice.category == ShowtimeSeat.category),
        )
        .where(ShowtimeSeat.showtime_id == showtime_id)
        .order_by(Seat.row_label, Seat.number)
    ).all()
    return SeatMapPublic(
        showtime_id=showtime.id,
        film_title=showtime.film_title,
        starts_at=showtime.starts_at,
        currency=showtime.currency,
        seats=[
            SeatStatePublic(
                label=r.label,
                row=r.row_label,
                number=r.number,
                category=r.category,
                status=r.status,
                price_minor=r.amount_minor,
            )
            for r in rows
        ],
    )
