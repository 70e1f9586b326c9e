"""The periodic schedule, from configuration: built-in defaults < a YAML file < environment.

The YAML file (`BOXOFFICE_SCHEDULER_SCHEDULE_FILE`, mounted from Helm values) looks like:

    jobs:
      expire-due-holds: {every: 1}
      daily-report: {cron: "5 0 * * *"}
      showtime-reminders: {every: 300, expires: 300}
      purge-retention: {enabled: false}

An environment variable set explicitly (`BOXOFFICE_SCHEDULE_DAILY_REPORT="0 1 * * *"`,
`BOXOFFICE_REAPER_SWEEP_INTERVAL_SECONDS=0.5`, or `off`) wins over the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from boxoffice_messaging.routes import (
    QUEUE_EMAIL,
    QUEUE_REAPER,
    TASK_EXPIRE_DUE_HOLDS,
    TASK_PURGE_EXPIRED_KEYS,
    TASK_PURGE_RETENTION,
    TASK_RECONCILE_REFUNDS,
    TASK_SEND_DAILY_REPORT,
    TASK_SEND_SHOWTIME_REMINDERS,
)
from boxoffice_settings import Settings
from pydantic import BaseModel, ConfigDict, Field, model_validator

from boxoffice_scheduler.timing import Cron, Every, Timing, parse_timing


@dataclass(frozen=True)
class PeriodicJob:
    """One entry of the schedule: which task to send where, and when."""

    name: str
    task: str
    queue: str
    timing: Timing
    # A message not picked up within `expires` seconds is dropped: the next slot covers it.
    expires: float | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


class JobOverride(BaseModel):
    """What the YAML file may say about one job; unset fields keep the default."""

    model_config = ConfigDict(extra="forbid")

    every: float | None = Field(default=None, gt=0)
    cron: str | None = None
    enabled: bool = True
    task: str | None = None
    queue: str | None = None
    expires: float | None = Field(default=None, gt=0)
    kwargs: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_timing(self) -> JobOverride:
        if self.every is not None and self.cron is not None:
            raise ValueError("give `every` or `cron`, not both")
        return self


class ScheduleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jobs: dict[str, JobOverride] = Field(default_factory=dict)


# Settings field for each job's timing in the environment (a number of seconds, cron, or off).
_ENV_FIELDS = {
    "expire-due-holds": "reaper_sweep_interval_seconds",
    "showtime-reminders": "schedule_showtime_reminders",
    "daily-report": "schedule_daily_report",
    "purge-retention": "schedule_purge_retention",
    "purge-expired-keys": "schedule_purge_expired_keys",
    "reconcile-refunds": "schedule_reconcile_refunds",
}


def default_jobs(settings: Settings) -> dict[str, PeriodicJob | None]:
    """The built-in schedule, with each timing read from settings (defaults or environment)."""
    sweep = settings.reaper_sweep_interval_seconds

    def timed(name: str) -> Timing | None:
        field_name = _ENV_FIELDS[name]
        if name == "showtime-reminders" and field_name not in settings.model_fields_set:
            # The notifier's own knob for its reminder cadence, unless the schedule's is set.
            return parse_timing(settings.reminder_interval_seconds)
        return parse_timing(getattr(settings, field_name))

    reminders = timed("showtime-reminders")

    specs: dict[str, tuple[str, str, float | None]] = {
        # A sweep that waited a few intervals is stale: the next one covers it.
        "expire-due-holds": (TASK_EXPIRE_DUE_HOLDS, QUEUE_REAPER, max(5.0, sweep * 5)),
        # A missed reminder tick is harmless: the next one reminds whoever is still due.
        "showtime-reminders": (
            TASK_SEND_SHOWTIME_REMINDERS,
            QUEUE_EMAIL,
            reminders.seconds if isinstance(reminders, Every) else None,
        ),
        "daily-report": (TASK_SEND_DAILY_REPORT, QUEUE_EMAIL, None),
        "purge-retention": (TASK_PURGE_RETENTION, QUEUE_REAPER, None),
        "purge-expired-keys": (TASK_PURGE_EXPIRED_KEYS, QUEUE_REAPER, None),
        # A missed pass is harmless: the next one finds the same pending refunds.
        "reconcile-refunds": (TASK_RECONCILE_REFUNDS, QUEUE_REAPER, 300.0),
    }
    jobs: dict[str, PeriodicJob | None] = {}
    for name, (task, queue, expires) in specs.items():
        timing = timed(name)
        jobs[name] = PeriodicJob(name, task, queue, timing, expires) if timing else None
    return jobs


def _apply_override(
    name: str, job: PeriodicJob | None, override: JobOverride
) -> PeriodicJob | None:
    if not override.enabled:
        return None
    timing: Timing | None = job.timing if job else None
    if override.every is not None:
        timing = Every(override.every)
    elif override.cron is not None:
        timing = Cron(override.cron)
    task = override.task or (job.task if job else None)
    queue = override.queue or (job.queue if job else None)
    if timing is None or task is None or queue is None:
        raise ValueError(f"schedule job {name!r} needs a task, a queue and `every` or `cron`")
    default_expires = job.expires if job else None
    return PeriodicJob(
        name=name,
        task=task,
        queue=queue,
        timing=timing,
        expires=override.expires if override.expires is not None else default_expires,
        kwargs=override.kwargs if override.kwargs is not None else (job.kwargs if job else {}),
    )


def load_schedule_file(path: Path) -> ScheduleFile:
    raw = yaml.safe_load(path.read_text()) or {}
    return ScheduleFile.model_validate(raw)


def build_schedule(settings: Settings) -> list[PeriodicJob]:
    """The jobs to run, in name order: defaults, then the YAML file, then explicit env vars."""
    jobs = default_jobs(settings)
    if settings.scheduler_schedule_file:
        schedule_file = load_schedule_file(Path(settings.scheduler_schedule_file))
        for name, override in schedule_file.jobs.items():
            jobs[name] = _apply_override(name, jobs.get(name), override)
    # An environment variable set on purpose beats the file, so one knob can be turned in place.
    explicit = settings.model_fields_set
    fresh = default_jobs(settings)
    for name, field_name in _ENV_FIELDS.items():
        if field_name in explicit:
            job = jobs.get(name) or fresh[name]
            timing = parse_timing(getattr(settings, field_name))
            jobs[name] = (
                PeriodicJob(job.name, job.task, job.queue, timing, job.expires, job.kwargs)
                if job and timing
                else None
            )
    return [job for _, job in sorted(jobs.items()) if job is not None]
