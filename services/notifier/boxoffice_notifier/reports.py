"""The daily report: per-venue figures computed in parallel, then one email to operators."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy.orm import Session

from boxoffice_notifier import repository
from boxoffice_notifier.details import format_amount

REPORT_NAMESPACE = uuid.UUID("0b6f4c1e-8a7d-4e52-a3b9-5d2c7e1f4a86")


def report_event_id(day: date) -> uuid.UUID:
    """One id per reported day, so the report is emailed once however often it is asked for."""
    return uuid.uuid5(REPORT_NAMESPACE, f"daily-report:{day.isoformat()}")


@dataclass
class VenueFigures:
    venue_id: str
    venue: str
    bookings: int = 0
    seats_sold: int = 0
    revenue: dict[str, int] = field(default_factory=dict)  # currency -> minor units
    expiries: int = 0
    cancellations: int = 0

    @property
    def revenue_text(self) -> str:
        if not self.revenue:
            return "0"
        return ", ".join(format_amount(v, c) for c, v in sorted(self.revenue.items()))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC day [start, end): the report is venue-agnostic, one crontab for all venues."""
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def venue_figures(session: Session, venue_id: uuid.UUID, day: date) -> VenueFigures:
    """Bookings confirmed, seats sold, revenue, holds expired and cancellations on `day`."""
    start, end = day_bounds(day)
    name = repository.venue_name(session, venue_id)
    figures = VenueFigures(str(venue_id), name or str(venue_id))
    by_currency, figures.seats_sold, figures.expiries, figures.cancellations = (
        repository.venue_day_figures(session, venue_id, start, end)
    )
    for currency, (count, revenue) in by_currency.items():
        figures.bookings += count
        figures.revenue[currency] = revenue
    return figures


def all_venue_ids(session: Session) -> list[uuid.UUID]:
    return repository.all_venue_ids(session)


@dataclass
class DailyReport:
    day: str
    venues: list[VenueFigures]
    total: VenueFigures


def assemble_report(day: date, parts: list[dict[str, Any]]) -> DailyReport:
    """Combine the per-venue results of the chord into one report with totals."""
    venues = sorted((VenueFigures(**part) for part in parts), key=lambda v: v.venue)
    total = VenueFigures("all", "All venues")
    for v in venues:
        total.bookings += v.bookings
        total.seats_sold += v.seats_sold
        total.expiries += v.expiries
        total.cancellations += v.cancellations
        for currency, amount in v.revenue.items():
            total.revenue[currency] = total.revenue.get(currency, 0) + amount
    return DailyReport(day.isoformat(), venues, total)
