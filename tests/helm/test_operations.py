"""Autoscaling, migrations, secrets, monitoring and the notes a platform team relies on."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import helm_python as helm
import pytest
import yaml

from tests.helm.chart import (
    CHART,
    CONNECTIONS,
    FULLNAME,
    NAMESPACE,
    VALUE_SETS,
    env_of,
    merge,
    name,
    render,
    render_chart,
)
from tests.helm.test_render import validate


def test_keda_scales_workers_on_queued_plus_running_tasks() -> None:
    rendered = render(VALUE_SETS["keda"])
    workers = [("notifier-email", "notifier.email", "32"), ("reaper", "reaper", "4")]
    for component, queue, concurrency in workers:
        scaled = rendered.get("ScaledObject", name(component))
        assert scaled["spec"]["scaleTargetRef"] == {"name": name(component)}
        trigger = scaled["spec"]["triggers"][0]
        assert trigger["type"] == "prometheus"
        query = trigger["metadata"]["query"]
        selector = f'job="boxoffice",namespace="{NAMESPACE}",queue_name="{queue}"'
        assert f"celery_queue_length{{{selector}}}" in query  # queued
        for counter in ("started", "succeeded", "failed", "retried", "ignored", "rejected"):
            assert f"celery_task_{counter}_total{{{selector}" in query  # running = started - ended
        # tests/observability/test_keda_query.py evaluates the query with promtool.
        assert trigger["metadata"]["threshold"] == concurrency  # the worker's pool size
        # KEDA owns the replica count: the Deployment leaves it alone, no HPA competes.
        assert "replicas" not in rendered.get("Deployment", name(component))["spec"]
        assert rendered.find("HorizontalPodAutoscaler", name(component)) is None
    assert rendered.find("ScaledObject", name("booking")) is None


def test_keda_is_off_by_default_and_the_hpa_is_the_fallback() -> None:
    assert render().of_kind("ScaledObject") == []
    rendered = render(merge(CONNECTIONS, {"reaper": {"autoscaling": {"enabled": True}}}))
    hpa = rendered.get("HorizontalPodAutoscaler", name("reaper"))
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert hpa["spec"]["scaleTargetRef"]["name"] == name("reaper")
    assert "replicas" not in rendered.get("Deployment", name("reaper"))["spec"]
    assert rendered.get("Deployment", name("notifier-email"))["spec"]["replicas"] == 1


def test_keda_and_the_hpa_together_are_refused() -> None:
    both = merge(
        CONNECTIONS, {"reaper": {"keda": {"enabled": True}, "autoscaling": {"enabled": True}}}
    )
    with pytest.raises(helm.HelmError, match="either keda or autoscaling"):
        render(both)


def test_api_autoscales_on_cpu() -> None:
    rendered = render(VALUE_SETS["all-features"])
    hpa = rendered.get("HorizontalPodAutoscaler", name("booking"))
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    assert "replicas" not in rendered.get("Deployment", name("booking"))["spec"]


def test_migrations_run_as_a_pre_install_and_pre_upgrade_hook() -> None:
    rendered = render(VALUE_SETS["all-features"])
    job = rendered.get("Job", name("migrations"))
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "boxoffice_db.migrate"]
    # The chart's own Secret does not exist yet: the hook has its own, created first.
    source = env_of(container)["DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    secret = rendered.get("Secret", source["name"])
    assert secret["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        annotations["helm.sh/hook-weight"]
    )
    assert source["key"] in secret["data"]


def test_migrations_wait_for_an_in_chart_database_until_after_install() -> None:
    job = render(VALUE_SETS["in-chart-datastores"]).get("Job", name("migrations"))
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,pre-upgrade"


def test_existing_secrets_are_referenced_not_copied() -> None:
    rendered = render(CONNECTIONS)
    assert rendered.of_kind("Secret") == []
    env = env_of(
        rendered.get("Deployment", name("booking"))["spec"]["template"]["spec"]["containers"][0]
    )
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "boxoffice-db",
        "key": "url",
    }
    assert env["REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "boxoffice-redis",
        "key": "url",
    }


def test_defaults_create_no_secret_and_read_the_documented_one() -> None:
    rendered = render()
    assert rendered.of_kind("Secret") == []
    env = env_of(
        rendered.get("Deployment", name("reaper"))["spec"]["template"]["spec"]["containers"][0]
    )
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == f"{FULLNAME}-connections"
    assert f"{FULLNAME}-connections" in rendered.notes


def test_inline_urls_and_passwords_go_to_a_created_secret() -> None:
    rendered = render(VALUE_SETS["all-features"])
    secret = rendered.get("Secret", f"{FULLNAME}-secrets")
    assert set(secret["data"]) == {
        "DATABASE_URL",
        "REDIS_URL",
        "SMTP_PASSWORD",
        "FLOWER_BASIC_AUTH",
    }
    for deployment in rendered.of_kind("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for entry in container.get("env", []):
                assert "value" not in entry or "pw@" not in str(entry["value"])
    config = rendered.get("ConfigMap", FULLNAME)["data"]
    assert not any("pw" in str(v) for v in config.values())


def test_in_chart_redis_never_evicts() -> None:
    rendered = render(VALUE_SETS["in-chart-datastores"])
    command = rendered.get("StatefulSet", name("redis"))["spec"]["template"]["spec"]["containers"][
        0
    ]["command"]
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    env = env_of(
        rendered.get("Deployment", name("booking"))["spec"]["template"]["spec"]["containers"][0]
    )
    assert env["REDIS_URL"]["value"] == f"redis://{name('redis')}:6379/0"
    assert env["BOXOFFICE_DATABASE_HOST"]["value"] == name("postgresql")
    password = env["BOXOFFICE_DATABASE_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert password == {"name": f"{FULLNAME}-secrets", "key": "POSTGRES_PASSWORD"}


def test_notes_say_how_to_reach_the_api() -> None:
    notes = render(CONNECTIONS).notes
    assert f"http://{name('booking')}.boxoffice.svc:80" in notes
    assert f"port-forward svc/{name('booking')}" in notes


@pytest.fixture(scope="module")
def chart_with_monitoring_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chart with a dashboard and rules in files/, as the observability work ships them."""
    chart = tmp_path_factory.mktemp("chart") / "boxoffice"
    shutil.copytree(CHART, chart)
    (chart / "files" / "dashboards").mkdir(parents=True, exist_ok=True)
    (chart / "files" / "prometheus").mkdir(parents=True, exist_ok=True)
    dashboard = {"title": "Boxoffice queues", "panels": [], "schemaVersion": 39}
    (chart / "files" / "dashboards" / "boxoffice_queues.json").write_text(json.dumps(dashboard))
    rules = {
        "groups": [
            {
                "name": "boxoffice.celery",
                "rules": [
                    {
                        "alert": "BoxofficeQueueBacklog",
                        "expr": "max(celery_queue_length) > 100",
                        "for": "10m",
                        "labels": {"severity": "warning"},
                        "annotations": {"summary": "Queue {{ $labels.queue_name }} is backing up"},
                    }
                ],
            }
        ]
    }
    (chart / "files" / "prometheus" / "rules.yaml").write_text(yaml.safe_dump(rules))
    return chart


def test_dashboards_and_rules_from_files_are_shipped(chart_with_monitoring_files: Path) -> None:
    rendered = render_chart(chart_with_monitoring_files, VALUE_SETS["all-features"])
    dashboard = rendered.get("ConfigMap", f"{FULLNAME}-dashboard-boxoffice-queues")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"]["grafana_folder"] == "Boxoffice"
    assert json.loads(dashboard["data"]["boxoffice_queues.json"])["title"] == "Boxoffice queues"
    rule = rendered.get("PrometheusRule", name("monitoring"))
    shipped = yaml.safe_load(
        (chart_with_monitoring_files / "files/prometheus/rules.yaml").read_text()
    )
    # Alert templates reach Prometheus untouched by Helm's own templating.
    assert rule["spec"]["groups"] == shipped["groups"]
    for obj in rendered.objects:
        validate(obj)


def test_monitoring_objects_follow_their_toggles(chart_with_monitoring_files: Path) -> None:
    rendered = render_chart(chart_with_monitoring_files, CONNECTIONS)
    kinds = {o["kind"] for o in rendered.objects}
    assert not {"ServiceMonitor", "PodMonitor", "PrometheusRule"} & kinds
    assert not [
        c for c in rendered.of_kind("ConfigMap") if "grafana_dashboard" in c["metadata"]["labels"]
    ]


def test_the_chart_renders_without_the_monitoring_files(tmp_path: Path) -> None:
    chart = tmp_path / "boxoffice"
    shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("files"))
    rendered = render_chart(chart, VALUE_SETS["all-features"])
    assert rendered.find("PrometheusRule", name("monitoring")) is None
    assert rendered.get("ServiceMonitor", name("booking"))
    assert rendered.get("PodMonitor", name("workers"))


def test_in_chart_postgresql_password_is_the_given_one_on_every_render() -> None:
    """A GitOps tool renders with `helm template` each time: the password must not move."""
    renders = [render_chart(CHART, VALUE_SETS["in-chart-datastores"]) for _ in range(2)]
    secrets = [r.get("Secret", f"{FULLNAME}-secrets")["data"] for r in renders]
    assert secrets[0] == secrets[1]
    assert base64.b64decode(secrets[0]["POSTGRES_PASSWORD"]).decode() == "try-it-out-Zoë"
    rendered = renders[0]
    pg = rendered.get("StatefulSet", name("postgresql"))["spec"]["template"]
    ref = env_of(pg["spec"]["containers"][0])["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
    api = rendered.get("Deployment", name("booking"))["spec"]["template"]
    assert env_of(api["spec"]["containers"][0])["BOXOFFICE_DATABASE_PASSWORD"]["valueFrom"] == {
        "secretKeyRef": ref
    }
    # The pods' checksum is of that same Secret.
    assert (
        pg["metadata"]["annotations"]["checksum/secret"]
        == (api["metadata"]["annotations"]["checksum/secret"])
    )


def test_in_chart_postgresql_without_a_password_is_refused() -> None:
    with pytest.raises(
        helm.HelmError,
        match=re.escape("postgresql.auth.password, or postgresql.auth.existingSecret"),
    ):
        render({"postgresql": {"enabled": True}, "redis": {"enabled": True}})


def test_in_chart_postgresql_takes_its_password_from_an_existing_secret() -> None:
    values = {
        "postgresql": {
            "enabled": True,
            "auth": {"existingSecret": "pg", "existingSecretPasswordKey": "pw"},
        },
        "redis": {"enabled": True},
    }
    rendered = render(values)
    assert rendered.find("Secret", f"{FULLNAME}-secrets") is None
    api = rendered.get("Deployment", name("booking"))["spec"]["template"]["spec"]["containers"][0]
    ref = env_of(api)["BOXOFFICE_DATABASE_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "pg", "key": "pw"}


def test_scrape_settings_and_the_runbook_base_reach_the_monitoring_objects() -> None:
    """What an SRE sets under monitoring.* is what the operator and Alertmanager get."""
    drop = {"action": "drop", "sourceLabels": ["__name__"], "regex": "python_gc_.*"}
    team = {"action": "replace", "targetLabel": "team", "replacement": "tickets-ñ"}
    rendered = render(
        merge(
            VALUE_SETS["all-features"],
            {
                "monitoring": {
                    "serviceMonitor": {
                        "scrapeTimeout": "7s",
                        "relabelings": [team],
                        "metricRelabelings": [drop],
                    },
                    "podMonitor": {
                        "scrapeTimeout": "8s",
                        "relabelings": [team],
                        "metricRelabelings": [drop],
                    },
                    "prometheusRule": {
                        "runbookBaseUrl": "https://git.example.com/boxoffice/-/blob/main/docs/runbooks/"
                    },
                }
            },
        )
    )
    endpoints = [
        *rendered.get("ServiceMonitor", name("booking"))["spec"]["endpoints"],
        *rendered.get("PodMonitor", name("workers"))["spec"]["podMetricsEndpoints"],
    ]
    assert sorted(e["scrapeTimeout"] for e in endpoints) == ["7s", "8s"]
    for endpoint in endpoints:
        # The chart's own `component` relabeling stays first; the extra ones follow it.
        targets = [r.get("targetLabel") for r in endpoint["relabelings"]]
        assert targets[0] == "component"
        assert endpoint["relabelings"][-1] == team
        assert endpoint["metricRelabelings"] == [drop]
    urls = [
        r["annotations"]["runbook_url"]
        for g in rendered.get("PrometheusRule", name("monitoring"))["spec"]["groups"]
        for r in g["rules"]
        if "alert" in r
    ]
    assert urls
    assert all(
        u.startswith("https://git.example.com/boxoffice/-/blob/main/docs/runbooks/Boxoffice")
        for u in urls
    )
    for obj in rendered.objects:
        validate(obj)
