"""The schedule comes from configuration: defaults, then a YAML file, then explicit env vars."""

from __future__ import annotations

from pathlib import Path

import pytest
from boxoffice_messaging.routes import (
    QUEUE_REAPER,
    TASK_EXPIRE_DUE_HOLDS,
    TASK_PURGE_EXPIRED_KEYS,
    TASK_PURGE_RETENTION,
    TASK_RECONCILE_REFUNDS,
    TASK_SEND_DAILY_REPORT,
    TASK_SEND_SHOWTIME_REMINDERS,
)
from boxoffice_scheduler.schedule import build_schedule
from boxoffice_scheduler.timing import Cron, Every
from boxoffice_settings import Settings
from pydantic import ValidationError

BASE = {"database_url": "postgresql://x/y", "redis_url": "redis://127.0.0.1:1/0"}


def settings(**values: object) -> Settings:
    return Settings.model_validate({**BASE, **values})


def test_default_schedule_has_every_periodic_job() -> None:
    jobs = {job.name: job for job in build_schedule(settings())}
    assert jobs["expire-due-holds"].task == TASK_EXPIRE_DUE_HOLDS
    assert jobs["expire-due-holds"].timing == Every(1)
    assert jobs["expire-due-holds"].queue == QUEUE_REAPER
    assert jobs["showtime-reminders"].task == TASK_SEND_SHOWTIME_REMINDERS
    assert jobs["showtime-reminders"].timing == Every(300)
    assert jobs["daily-report"].task == TASK_SEND_DAILY_REPORT
    assert jobs["daily-report"].timing == Cron("5 0 * * *")
    assert jobs["purge-retention"].task == TASK_PURGE_RETENTION
    assert jobs["purge-retention"].timing == Every(7 * 24 * 3600)
    assert jobs["purge-expired-keys"].task == TASK_PURGE_EXPIRED_KEYS
    assert jobs["purge-expired-keys"].timing == Every(3600)
    assert jobs["reconcile-refunds"].task == TASK_RECONCILE_REFUNDS
    assert jobs["reconcile-refunds"].timing == Every(60)
    assert jobs["reconcile-refunds"].queue == QUEUE_REAPER


def test_yaml_file_overrides_defaults_and_env_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "schedule.yaml"
    path.write_text(
        "jobs:\n"
        "  daily-report: {cron: '30 1 * * *'}\n"
        "  showtime-reminders: {every: 120, expires: 120}\n"
        "  purge-retention: {enabled: false}\n"
        "  warm-cache: {every: 60, task: booking.warm_cache, queue: reaper}\n"
    )
    jobs = {
        job.name: job
        for job in build_schedule(
            settings(scheduler_schedule_file=str(path), schedule_showtime_reminders="600")
        )
    }
    assert jobs["daily-report"].timing == Cron("30 1 * * *")
    assert jobs["showtime-reminders"].timing == Every(600)  # the explicit env var wins
    assert jobs["showtime-reminders"].expires == 120
    assert "purge-retention" not in jobs
    assert jobs["warm-cache"].task == "booking.warm_cache"


def test_a_job_can_be_switched_off_from_the_environment() -> None:
    names = {job.name for job in build_schedule(settings(schedule_daily_report="off"))}
    assert "daily-report" not in names


@pytest.mark.parametrize(
    "values",
    [
        {"schedule_daily_report": "5 0 * *"},
        {"schedule_daily_report": "99 0 * * *"},
        {"schedule_purge_retention": "-5"},
        {"scheduler_renew_deadline_seconds": 20, "scheduler_lease_duration_seconds": 15},
        {"scheduler_retry_period_seconds": 10, "scheduler_renew_deadline_seconds": 10},
    ],
)
def test_bad_schedule_configuration_is_refused(values: dict[str, object]) -> None:
    with pytest.raises((ValueError, ValidationError)):
        build_schedule(settings(**values))


def test_unknown_keys_in_the_yaml_file_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "schedule.yaml"
    path.write_text("jobs:\n  daily-report: {cron: '5 0 * * *', evry: 3}\n")
    with pytest.raises(ValidationError):
        build_schedule(settings(scheduler_schedule_file=str(path)))
