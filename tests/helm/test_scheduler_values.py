"""Scheduler values: lease timings and the schedule file, as the scheduler reads them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from boxoffice_scheduler.schedule import build_schedule, load_schedule_file
from boxoffice_scheduler.timing import Cron, Every
from boxoffice_settings import Settings

from tests.helm.chart import (
    CHART,
    CONNECTIONS,
    Manifest,
    Rendered,
    env_of,
    merge,
    name,
    render,
    settings_from_env,
)
from tests.helm.test_render import validate

SCHEDULE = {
    "daily-report": {"cron": "0 1 * * *"},
    "purge-retention": {"enabled": False},
    "showtime-reminders": {"every": 120, "expires": 60},
}


def scheduler_pod(rendered: Rendered) -> Manifest:
    pod: Manifest = rendered.get("Deployment", name("scheduler"))["spec"]["template"]
    return pod


def test_lease_timings_reach_the_scheduler_under_the_names_it_reads() -> None:
    values = merge(
        CONNECTIONS,
        {
            "scheduler": {
                "leaderElection": {
                    "leaseDurationSeconds": 30,
                    "renewDeadlineSeconds": 20,
                    "retryPeriodSeconds": 2.5,
                }
            }
        },
    )
    env = env_of(scheduler_pod(render(values))["spec"]["containers"][0])
    given = {k: e["value"] for k, e in env.items() if k.startswith("BOXOFFICE_SCHEDULER_")}
    assert given == {
        "BOXOFFICE_SCHEDULER_LEADER_ELECTION": "kubernetes",
        "BOXOFFICE_SCHEDULER_LEASE_NAME": name("scheduler"),
        "BOXOFFICE_SCHEDULER_LEASE_DURATION_SECONDS": "30",
        "BOXOFFICE_SCHEDULER_RENEW_DEADLINE_SECONDS": "20",
        "BOXOFFICE_SCHEDULER_RETRY_PERIOD_SECONDS": "2.5",
    }
    # The scheduler's own settings accept exactly these (and check their order).
    settings = settings_from_env(given)
    assert settings.scheduler_leader_election == "kubernetes"
    assert settings.scheduler_lease_name == name("scheduler")
    assert settings.scheduler_lease_duration_seconds == 30
    assert settings.scheduler_renew_deadline_seconds == 20
    assert settings.scheduler_retry_period_seconds == 2.5


def test_the_defaults_match_the_settings_defaults() -> None:
    env = env_of(scheduler_pod(render(CONNECTIONS))["spec"]["containers"][0])
    defaults = Settings.model_fields
    for variable in ("LEASE_DURATION", "RENEW_DEADLINE", "RETRY_PERIOD"):
        field = f"scheduler_{variable.lower()}_seconds"
        assert (
            float(env[f"BOXOFFICE_SCHEDULER_{variable}_SECONDS"]["value"])
            == defaults[field].default
        )


@pytest.mark.parametrize(
    "timings",
    [
        {"retryPeriodSeconds": 10, "renewDeadlineSeconds": 10},
        {"renewDeadlineSeconds": 20, "leaseDurationSeconds": 15},
    ],
    ids=["retry-not-below-renew", "renew-not-below-lease"],
)
def test_timings_the_scheduler_would_refuse_fail_the_render(timings: dict[str, float]) -> None:
    with pytest.raises(helm.HelmError, match="retryPeriodSeconds < renewDeadlineSeconds"):
        render(merge(CONNECTIONS, {"scheduler": {"leaderElection": timings}}))


def test_no_state_dir_and_no_schedule_file_by_default() -> None:
    rendered = render(CONNECTIONS)
    pod = scheduler_pod(rendered)
    env = env_of(pod["spec"]["containers"][0])
    assert "BOXOFFICE_SCHEDULER_STATE_DIR" not in env  # the schedule's state lives in Redis
    assert "BOXOFFICE_SCHEDULER_SCHEDULE_FILE" not in env
    assert rendered.find("ConfigMap", name("scheduler-schedule")) is None
    assert "checksum/schedule" not in pod["metadata"]["annotations"]


def test_the_schedule_is_a_mounted_file_with_only_the_keys_given(tmp_path: Path) -> None:
    rendered = render(merge(CONNECTIONS, {"scheduler": {"schedule": SCHEDULE}}))
    configmap = rendered.get("ConfigMap", name("scheduler-schedule"))
    validate(configmap)
    text = configmap["data"]["schedule.yaml"]
    assert yaml.safe_load(text) == {"jobs": SCHEDULE}

    pod = scheduler_pod(rendered)
    container = pod["spec"]["containers"][0]
    path = Path(env_of(container)["BOXOFFICE_SCHEDULER_SCHEDULE_FILE"]["value"])
    mount = next(m for m in container["volumeMounts"] if m["name"] == "schedule")
    assert path.parent == Path(mount["mountPath"])
    assert mount["readOnly"] is True
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "schedule")
    assert volume["configMap"]["name"] == name("scheduler-schedule")
    assert path.name in configmap["data"]

    # The scheduler's own loader reads the rendered file and builds the schedule from it.
    local = tmp_path / path.name
    local.write_text(text)
    assert set(load_schedule_file(local).jobs) == set(SCHEDULE)
    settings = settings_from_env({"BOXOFFICE_SCHEDULER_SCHEDULE_FILE": str(local)})
    jobs = {job.name: job for job in build_schedule(settings)}
    assert "purge-retention" not in jobs
    assert jobs["daily-report"].timing == Cron("0 1 * * *")
    assert jobs["showtime-reminders"].timing == Every(120)
    assert jobs["showtime-reminders"].expires == 60
    assert jobs["expire-due-holds"].timing == Every(1.0)  # not given: the default stays


def test_changing_the_schedule_rolls_only_the_scheduler() -> None:
    def annotations(schedule: dict[str, Any]) -> dict[str, dict[str, str]]:
        rendered = render(merge(CONNECTIONS, {"scheduler": {"schedule": schedule}}))
        return {
            d["metadata"]["name"]: d["spec"]["template"]["metadata"]["annotations"]
            for d in rendered.of_kind("Deployment")
        }

    before = annotations(SCHEDULE)
    after = annotations(merge(SCHEDULE, {"daily-report": {"cron": "0 2 * * *"}}))
    changed = {n for n in before if before[n] != after[n]}
    assert changed == {name("scheduler")}
    assert (
        before[name("scheduler")]["checksum/config"] == after[name("scheduler")]["checksum/config"]
    )


@pytest.mark.parametrize(
    "job",
    [{"every": 60, "cron": "* * * * *"}, {"evry": 60}, {"every": 0}, {"enabled": "no"}],
    ids=["every-and-cron", "unknown-key", "zero-interval", "not-a-boolean"],
)
def test_a_job_the_scheduler_would_refuse_fails_the_schema(job: dict[str, Any]) -> None:
    with helm.Chart.load(str(CHART)) as chart, pytest.raises(helm.HelmError):
        chart.validate_schema({"scheduler": {"schedule": {"daily-report": job}}})
