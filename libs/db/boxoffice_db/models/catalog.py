"""The catalog: venues, screens and their seat maps, showtimes, prices and each showtime's seats."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from boxoffice_db.models.base import Base, created_at_now, uuid_pk


class SeatState(enum.StrEnum):
    AVAILABLE = "available"
    HELD = "held"
    SOLD = "sold"
    BLOCKED = "blocked"


class Venue(Base):
    __tablename__ = "venues"

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    created_at: Mapped[datetime] = created_at_now()

    screens: Mapped[list[Screen]] = relationship(back_populates="venue")


class Screen(Base):
    __tablename__ = "screens"
    __table_args__ = (UniqueConstraint("venue_id", "name"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    venue_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = created_at_now()

    venue: Mapped[Venue] = relationship(back_populates="screens")
    seats: Mapped[list[Seat]] = relationship(
        back_populates="screen", order_by="(Seat.row_label, Seat.number)"
    )


class Seat(Base):
    """A seat of a screen's seat map."""

    __tablename__ = "seats"
    __table_args__ = (UniqueConstraint("screen_id", "label"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    screen_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("screens.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(16))
    row_label: Mapped[str] = mapped_column(String(8))
    number: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(32), default="standard")
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    # An aisle runs right after this seat (seat maps draw the gap there).
    aisle_after: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    accessible: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")

    screen: Mapped[Screen] = relationship(back_populates="seats")


class Showtime(Base):
    __tablename__ = "showtimes"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        # Two showtimes on one screen never overlap: the database refuses it (btree_gist).
        ExcludeConstraint(
            (text("screen_id"), "="),
            (text("tstzrange(starts_at, ends_at)"), "&&"),
            name="ex_showtimes_no_overlap",
            using="gist",
        ),
        Index("ix_showtimes_starts_at_id", "starts_at", "id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    screen_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("screens.id", ondelete="RESTRICT"))
    film_title: Mapped[str] = mapped_column(String(300))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    currency: Mapped[str] = mapped_column(String(3), default="INR")
    created_at: Mapped[datetime] = created_at_now()

    screen: Mapped[Screen] = relationship()
    prices: Mapped[list[ShowtimePrice]] = relationship(back_populates="showtime")


class ShowtimePrice(Base):
    __tablename__ = "showtime_prices"
    __table_args__ = (CheckConstraint("amount_minor >= 0", name="amount_not_negative"),)

    showtime_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("showtimes.id", ondelete="CASCADE"), primary_key=True
    )
    category: Mapped[str] = mapped_column(String(32), primary_key=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)

    showtime: Mapped[Showtime] = relationship(back_populates="prices")


class ShowtimeSeat(Base):
    """One row per seat of a showtime; its single `booking_id` is what forbids double booking.

    A hold is a conditional UPDATE that only succeeds on a row that is available or whose
    hold has lapsed, so two bookings can never own the same row at once.
    """

    __tablename__ = "showtime_seats"
    __table_args__ = (
        CheckConstraint(
            "(state IN ('held', 'sold')) = (booking_id IS NOT NULL)", name="owner_matches_state"
        ),
        CheckConstraint("(state = 'held') = (hold_expires_at IS NOT NULL)", name="hold_has_expiry"),
        Index("ix_showtime_seats_booking_id", "booking_id"),
    )

    showtime_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("showtimes.id", ondelete="CASCADE"), primary_key=True
    )
    label: Mapped[str] = mapped_column(String(16), primary_key=True)
    seat_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("seats.id", ondelete="RESTRICT"))
    category: Mapped[str] = mapped_column(String(32))
    state: Mapped[SeatState] = mapped_column(
        Enum(SeatState, name="seat_state", values_callable=lambda e: [m.value for m in e])
    )
    booking_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("bookings.id", ondelete="SET NULL")
    )
    hold_expires_at: Mapped[datetime | None]
