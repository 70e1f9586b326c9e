"""Request and response bodies of the catalog: venues, screens with seat maps, showtimes."""

from __future__ import annotations

import uuid
import zoneinfo
from datetime import datetime
from typing import Annotated

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    field_validator,
    model_validator,
)

from boxoffice_booking.validators import AmountMinor, PlainText

Name = Annotated[PlainText, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
RowLabel = Annotated[str, StringConstraints(pattern=r"^[A-Z]{1,3}$")]
SeatCategory = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
SeatNumber = Annotated[int, Strict(), Field(ge=1, le=100)]


class VenueCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    timezone: str = Field(default="UTC", max_length=64, examples=["Asia/Kolkata"])

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value


class VenuePublic(BaseModel):
    id: uuid.UUID
    name: str
    timezone: str
    created_at: datetime


class RowCreate(BaseModel):
    """One row of a seat map: seats numbered 1..`seats`, labelled row + number (e.g. `C7`)."""

    model_config = ConfigDict(extra="forbid")

    label: RowLabel
    seats: SeatNumber
    category: SeatCategory = "standard"
    blocked: list[SeatNumber] = Field(default=[], max_length=100)
    aisle_after: list[SeatNumber] = Field(default=[], max_length=100)
    accessible: list[SeatNumber] = Field(default=[], max_length=100)

    @model_validator(mode="after")
    def _numbers_exist(self) -> RowCreate:
        for name in ("blocked", "aisle_after", "accessible"):
            beyond = [n for n in getattr(self, name) if n > self.seats]
            if beyond:
                raise ValueError(f"{name} names seats the row does not have: {beyond}")
        return self


class ScreenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    rows: list[RowCreate] = Field(min_length=1, max_length=60)

    @field_validator("rows")
    @classmethod
    def _rows_unique(cls, rows: list[RowCreate]) -> list[RowCreate]:
        labels = [row.label for row in rows]
        if len(set(labels)) != len(labels):
            raise ValueError("row labels must be unique")
        return rows


class SeatPublic(BaseModel):
    label: str
    number: int
    category: str
    blocked: bool
    aisle_after: bool
    accessible: bool


class RowPublic(BaseModel):
    label: str
    seats: list[SeatPublic]


class ScreenPublic(BaseModel):
    id: uuid.UUID
    venue_id: uuid.UUID
    name: str
    capacity: int
    categories: list[str]
    rows: list[RowPublic]
    created_at: datetime


class ScreenSummary(BaseModel):
    id: uuid.UUID
    venue_id: uuid.UUID
    name: str
    created_at: datetime


class ShowtimeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    screen_id: uuid.UUID
    film_title: Annotated[
        PlainText, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)
    ]
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    currency: Currency = "INR"
    prices: dict[SeatCategory, AmountMinor] = Field(min_length=1, max_length=32)

    @model_validator(mode="after")
    def _ends_after_start(self) -> ShowtimeCreate:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        if (self.ends_at - self.starts_at).days >= 2:
            raise ValueError("a showtime lasts less than two days")
        return self


class PricePublic(BaseModel):
    category: str
    amount_minor: int


class ShowtimePublic(BaseModel):
    id: uuid.UUID
    screen_id: uuid.UUID
    venue_id: uuid.UUID
    film_title: str
    starts_at: datetime
    ends_at: datetime
    currency: str
    prices: list[PricePublic]
    created_at: datetime
