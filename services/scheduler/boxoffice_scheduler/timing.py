"""When a periodic job is due: fixed intervals on a wall-clock grid, or cron expressions.

Every due time is a *slot* that every replica computes alike (an interval slot is a multiple
of the interval since the Unix epoch; a cron slot is a matching minute). A slot is what the
scheduler claims in Redis before sending, so one slot is sent at most once however many
replicas run, and a restart neither resets a countdown nor re-sends a slot already sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from celery.schedules import crontab

# Days scanned before giving up on an expression that never matches (e.g. 30 February).
_MAX_CRON_DAYS = 366 * 5


def to_ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


@dataclass(frozen=True)
class Every:
    """Every `seconds`, on the grid of multiples of `seconds` since the Unix epoch."""

    seconds: float

    def __post_init__(self) -> None:
        if not self.seconds > 0 or not math.isfinite(self.seconds):
            raise ValueError(f"an interval must be a positive number of seconds: {self.seconds}")

    @property
    def _step_ms(self) -> int:
        return max(1, round(self.seconds * 1000))

    def latest_due(self, now_ms: int, last_ms: int | None) -> int | None:
        """The newest slot at or before `now_ms` if it was not sent yet, else None."""
        slot = now_ms - now_ms % self._step_ms
        return slot if last_ms is None or slot > last_ms else None

    def next_after(self, now_ms: int) -> int:
        return now_ms - now_ms % self._step_ms + self._step_ms

    def __str__(self) -> str:
        return f"every {self.seconds:g}s"


@dataclass(frozen=True)
class Cron:
    """A five-field cron expression (minute hour day-of-month month day-of-week), in UTC.

    Fields are parsed by Celery's `crontab`, so its syntax (`*/15`, `1-5`, `mon-fri`) holds;
    like Celery, a day must match both day-of-month and day-of-week.
    """

    expression: str

    def __post_init__(self) -> None:
        fields = self.expression.split()
        if len(fields) != 5:
            raise ValueError(f"a cron expression has five fields: {self.expression!r}")
        minute, hour, day_of_month, month_of_year, day_of_week = fields
        spec: Any = crontab(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month_of_year,
            day_of_week=day_of_week,
        )
        sets = (spec.minute, spec.hour, spec.day_of_month, spec.month_of_year, spec.day_of_week)
        object.__setattr__(self, "_sets", tuple(frozenset(int(v) for v in s) for s in sets))

    def _matches_day(self, day: datetime) -> bool:
        _, _, days, months, weekdays = self._parsed
        cron_weekday = (day.weekday() + 1) % 7  # cron counts from Sunday = 0
        return day.month in months and day.day in days and cron_weekday in weekdays

    @property
    def _parsed(self) -> tuple[frozenset[int], ...]:
        parsed: tuple[frozenset[int], ...] = object.__getattribute__(self, "_sets")
        return parsed

    def next_after_dt(self, moment: datetime) -> datetime:
        """The first matching minute strictly after `moment`."""
        minutes, hours = sorted(self._parsed[0]), sorted(self._parsed[1])
        start = moment.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = start.replace(hour=0, minute=0)
        for _ in range(_MAX_CRON_DAYS):
            if self._matches_day(day):
                for hour in hours:
                    for minute in minutes:
                        candidate = day.replace(hour=hour, minute=minute)
                        if candidate >= start:
                            return candidate
            day += timedelta(days=1)
        raise ValueError(f"cron expression never matches: {self.expression!r}")

    def next_after(self, now_ms: int) -> int:
        return to_ms(self.next_after_dt(from_ms(now_ms)))

    def latest_due(self, now_ms: int, last_ms: int | None) -> int | None:
        """The newest matching minute in (last, now]; several missed ones are sent once.

        With no record yet (a first deployment) nothing is due: the schedule starts from now,
        rather than sending a report for a day that may be long gone.
        """
        if last_ms is None:
            return None
        due: int | None = None
        candidate = self.next_after(last_ms)
        while candidate <= now_ms:
            due = candidate
            candidate = self.next_after(candidate)
        return due

    def __str__(self) -> str:
        return f"cron {self.expression!r} UTC"


Timing = Every | Cron


def parse_timing(text: str | float) -> Timing | None:
    """`"1"`, `"0.25"`, `300` -> Every; `"5 0 * * *"` -> Cron; `"off"` -> None (disabled)."""
    if isinstance(text, int | float):
        return Every(float(text))
    value = text.strip()
    if value.lower() in {"off", "disabled", "none", ""}:
        return None
    try:
        return Every(float(value.removesuffix("s")))
    except ValueError:
        return Cron(value)
