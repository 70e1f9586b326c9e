"""What a platform team adds: extension points, datastores by parts, least privilege, migrations
without Helm hooks, PgBouncer and the connection budget (rendered with the real Helm engine)."""

from __future__ import annotations

import os
import re
from unittest import mock

import helm_python as helm
import pytest
from boxoffice_settings import Settings

from tests.helm.chart import (
    CONNECTIONS,
    FULLNAME,
    Manifest,
    env_of,
    merge,
    name,
    pod_specs,
    render,
    settings_from_env,
)
from tests.helm.test_render import validate

DATABASE_WORKLOADS = ["booking", "relay", "notifier-email", "notifier-sms", "reaper"]
APP_DEPLOYMENTS = [*DATABASE_WORKLOADS, "scheduler"]

BY_PARTS = {
    "externalDatabase": {
        "host": "pg.internal",
        "user": "josé",
        "database": "boxoffice",
        "existingSecret": "pg-credentials",
        "existingSecretPasswordKey": "db-password",
    },
    "externalRedis": {
        "host": "redis.internal",
        "port": 6380,
        "tls": True,
        "database": 2,
        "existingSecret": "redis-credentials",
        "existingSecretPasswordKey": "redis-password",
    },
}


def pod(rendered_obj: Manifest) -> Manifest:
    spec: Manifest = rendered_obj["spec"]["template"]["spec"]
    return spec


def main_container(obj: Manifest) -> Manifest:
    container: Manifest = pod(obj)["containers"][0]
    return container


def settings_of(env: dict[str, str]) -> Settings:
    """The Settings a process builds from exactly `env` (no DATABASE_URL filled in)."""
    with mock.patch.dict(os.environ, env, clear=True):
        return Settings()


def plain_env(container: Manifest, **secrets: str) -> dict[str, str]:
    """The env a process sees: values as given, secret references replaced by `secrets`."""
    env = {}
    for key, entry in env_of(container).items():
        if "value" in entry:
            env[key] = entry["value"]
        elif "secretKeyRef" in entry.get("valueFrom", {}):
            env[key] = secrets[entry["valueFrom"]["secretKeyRef"]["key"]]
    return env


def test_an_smtp_ca_file_is_mounted_and_named_to_the_email_channel() -> None:
    values = merge(
        CONNECTIONS,
        {
            "notifier": {
                "email": {
                    "extraVolumes": [{"name": "smtp-ca", "secret": {"secretName": "smtp-ca"}}],
                    "extraVolumeMounts": [
                        {"name": "smtp-ca", "mountPath": "/etc/boxoffice/smtp-ca", "readOnly": True}
                    ],
                    "extraEnv": [
                        {"name": "BOXOFFICE_SMTP_CA_FILE", "value": "/etc/boxoffice/smtp-ca/ca.crt"}
                    ],
                }
            }
        },
    )
    rendered = render(values)
    email = rendered.get("Deployment", name("notifier-email"))
    assert {"name": "smtp-ca", "secret": {"secretName": "smtp-ca"}} in pod(email)["volumes"]
    mounts = {m["mountPath"]: m["name"] for m in main_container(email)["volumeMounts"]}
    assert mounts == {"/tmp": "tmp", "/etc/boxoffice/smtp-ca": "smtp-ca"}
    env = plain_env(main_container(email), url="postgresql://db/boxoffice")
    assert settings_from_env(env).smtp_ca_file == "/etc/boxoffice/smtp-ca/ca.crt"
    # Only the component that asked for it.
    sms = rendered.get("Deployment", name("notifier-sms"))
    assert "BOXOFFICE_SMTP_CA_FILE" not in env_of(main_container(sms))
    for obj in rendered.objects:
        validate(obj)


def test_global_extension_points_reach_every_app_pod_and_are_templated() -> None:
    proxy = {"name": "proxy", "image": "proxy:1", "args": ["--for={{ .Release.Name }}"]}
    init = {"name": "warm-up", "image": "busybox:1", "command": ["true"]}
    values = merge(
        CONNECTIONS,
        {
            "extraEnv": [{"name": "RELEASE", "value": "{{ .Release.Name }}"}],
            "extraEnvFrom": [{"configMapRef": {"name": "platform-env"}}],
            "extraVolumes": [{"name": "pg-ca", "configMap": {"name": "pg-ca"}}],
            "extraVolumeMounts": [{"name": "pg-ca", "mountPath": "/etc/pg-ca"}],
            "extraContainers": [proxy],
            "extraInitContainers": [init],
            "migrations": {"extraEnv": [{"name": "ONLY_MIGRATIONS", "value": "1"}]},
        },
    )
    rendered = render(values)
    for component in [*APP_DEPLOYMENTS, "migrations"]:
        obj = rendered.get("Job" if component == "migrations" else "Deployment", name(component))
        spec, container = pod(obj), main_container(obj)
        assert env_of(container)["RELEASE"]["value"] == "shop", component
        assert {"configMapRef": {"name": "platform-env"}} in container["envFrom"]
        assert {"name": "pg-ca", "mountPath": "/etc/pg-ca"} in container["volumeMounts"]
        assert {"name": "pg-ca", "configMap": {"name": "pg-ca"}} in spec["volumes"]
        assert spec["initContainers"][-1] == init
        sidecars = [c["name"] for c in spec["containers"][1:]]
        # A sidecar would keep the Job from ever completing: the Job takes only its own.
        assert sidecars == ([] if component == "migrations" else ["proxy"]), component
    assert pod(rendered.get("Deployment", name("booking")))["containers"][1]["args"] == [
        "--for=shop"
    ]
    assert "ONLY_MIGRATIONS" not in env_of(
        main_container(rendered.get("Deployment", name("relay")))
    )
    for obj in rendered.objects:
        validate(obj)


def test_extra_objects_and_common_metadata_are_rendered() -> None:
    external_secret = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "{{ .Release.Name }}-platform"},
        "data": {"namespace": "{{ .Release.Namespace }}"},
    }
    as_text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-text\n"
    values = merge(
        CONNECTIONS,
        {
            "extraObjects": [external_secret, as_text],
            "commonLabels": {"team": "ticketing"},
            "commonAnnotations": {"owner": "zoë@exämple.com"},
        },
    )
    rendered = render(values)
    assert rendered.get("ConfigMap", "shop-platform")["data"] == {"namespace": "boxoffice"}
    assert rendered.get("ConfigMap", "shop-text")
    chart_objects = [o for o in rendered.objects if o["metadata"]["name"].startswith(FULLNAME)]
    assert len(chart_objects) > 20
    for obj in chart_objects:
        assert obj["metadata"]["labels"]["team"] == "ticketing", obj["metadata"]["name"]
        assert obj["metadata"]["annotations"]["owner"] == "zoë@exämple.com", obj["metadata"]["name"]


def test_datastores_by_host_and_an_existing_secrets_password_key() -> None:
    rendered = render(BY_PARTS)
    assert rendered.of_kind("Secret") == []  # the operator's Secrets are referenced, not copied
    for component in DATABASE_WORKLOADS:
        container = main_container(rendered.get("Deployment", name(component)))
        refs = {
            k: e["valueFrom"]["secretKeyRef"]
            for k, e in env_of(container).items()
            if "valueFrom" in e
        }
        assert refs["BOXOFFICE_DATABASE_PASSWORD"] == {
            "name": "pg-credentials",
            "key": "db-password",
        }
        assert refs["BOXOFFICE_REDIS_PASSWORD"] == {
            "name": "redis-credentials",
            "key": "redis-password",
        }
        settings = settings_of(
            plain_env(container, **{"db-password": "p@ss/wörd", "redis-password": "r:pw"})
        )
        assert (
            settings.database_url
            == "postgresql://jos%C3%A9:p%40ss%2Fw%C3%B6rd@pg.internal:5432/boxoffice"
        )
        assert settings.redis_url == "rediss://:r%3Apw@redis.internal:6380/2"
        assert settings.database_prepared_statements is True  # straight to PostgreSQL


def test_inline_passwords_by_host_go_to_the_chart_secret_and_the_hook_secret() -> None:
    values = {
        "externalDatabase": {"host": "pg.internal", "password": "db-pw"},
        "externalRedis": {"host": "redis.internal", "password": "redis-pw"},
    }
    rendered = render(values)
    assert set(rendered.get("Secret", f"{FULLNAME}-secrets")["data"]) == {
        "DATABASE_PASSWORD",
        "REDIS_PASSWORD",
    }
    hook = rendered.get("Secret", name("migrations"))
    assert set(hook["data"]) == {"DATABASE_PASSWORD", "REDIS_PASSWORD"}
    job = main_container(rendered.get("Job", name("migrations")))
    assert env_of(job)["BOXOFFICE_DATABASE_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == name(
        "migrations"
    )


def test_secrets_reach_only_the_pods_that_use_them() -> None:
    values = {
        "externalDatabase": {"url": "postgresql://u:pw@db/boxoffice"},
        "externalRedis": {"url": "redis://redis:6379/0"},
        "apiKey": {"bootstrapKey": "k" * 40},
        "smtp": {"password": "smtp-pw"},
        "sms": {"token": "sms-token"},
    }
    rendered = render(values)
    holders: dict[str, set[str]] = {}
    for obj, spec in pod_specs(rendered):
        for container in spec["containers"] + spec.get("initContainers", []):
            for key in env_of(container):
                holders.setdefault(key, set()).add(obj["metadata"]["name"])
    assert holders["BOXOFFICE_BOOTSTRAP_API_KEY"] == {name("booking")}
    assert holders["BOXOFFICE_SMTP_PASSWORD"] == {name("notifier-email")}
    assert holders["BOXOFFICE_SMS_GATEWAY_TOKEN"] == {name("notifier-sms")}


def test_one_service_account_per_component_and_only_the_scheduler_mounts_a_token() -> None:
    rendered = render(
        merge(
            CONNECTIONS,
            {
                "serviceAccount": {"annotations": {"iam": "shared"}},
                "reaper": {"serviceAccount": {"annotations": {"iam": "reaper"}}},
            },
        )
    )
    accounts = {a["metadata"]["name"]: a for a in rendered.of_kind("ServiceAccount")}
    for component in APP_DEPLOYMENTS:
        spec = pod(rendered.get("Deployment", name(component)))
        assert spec["serviceAccountName"] == name(component)
        assert accounts[name(component)]["automountServiceAccountToken"] is False
        assert spec["automountServiceAccountToken"] is (component == "scheduler")
    assert accounts[name("reaper")]["metadata"]["annotations"] == {"iam": "reaper"}
    assert accounts[name("relay")]["metadata"]["annotations"] == {"iam": "shared"}
    assert len(accounts) == len(APP_DEPLOYMENTS)


def test_every_pod_that_uses_the_database_waits_for_the_migrations() -> None:
    rendered = render(CONNECTIONS | {"migrations": {"enabled": True}})
    for component in DATABASE_WORKLOADS:
        init = pod(rendered.get("Deployment", name(component)))["initContainers"]
        assert init[0]["name"] == "wait-for-migrations"
        assert init[0]["command"] == [
            "python",
            "-m",
            "boxoffice_db.migrate",
            "--wait",
            "--timeout",
            "600",
        ]
        assert "DATABASE_URL" in env_of(init[0])
    # The scheduler never touches PostgreSQL; nothing holds it back.
    assert "initContainers" not in pod(rendered.get("Deployment", name("scheduler")))
    off = render(merge(CONNECTIONS, {"migrations": {"waitForMigrations": {"enabled": False}}}))
    assert "initContainers" not in pod(off.get("Deployment", name("booking")))


def test_migrations_without_helm_hooks_are_an_ordinary_job_per_image() -> None:
    argo = merge(
        CONNECTIONS,
        {
            "migrations": {
                "useHelmHooks": False,
                "jobAnnotations": {"argocd.argoproj.io/sync-wave": "-1"},
            }
        },
    )
    jobs = render(argo).of_kind("Job")
    assert len(jobs) == 1
    job = jobs[0]
    assert not any(k.startswith("helm.sh/") for k in job["metadata"]["annotations"])
    assert job["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-1"
    assert job["spec"]["ttlSecondsAfterFinished"] == 86400
    assert job["metadata"]["name"].startswith(name("migrations") + "-")
    upgraded = render(merge(argo, {"image": {"tag": "2.0.0"}})).of_kind("Job")[0]
    assert (
        upgraded["metadata"]["name"] != job["metadata"]["name"]
    )  # a Job's pod template is immutable
    hooked = render(CONNECTIONS).get("Job", name("migrations"))
    assert hooked["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"


def test_an_over_budget_connection_plan_fails_naming_the_values_to_change() -> None:
    values = merge(CONNECTIONS, {"externalDatabase": {"maxConnections": 100}})
    with pytest.raises(helm.HelmError) as failed:
        render(values)
    message = str(failed.value)
    # 2x30 (API) + 1x20 (relay) + 1x64 (email) + 1x20 (SMS) + 2x20 (reaper) + the migration Job.
    assert "the app may open 205 PostgreSQL connections" in message
    assert (
        "booking 2x30 + relay 1x20 + notifier.email 1x64 + notifier.sms 1x20 + reaper 2x20"
        in message
    )
    for value in (
        "enable pgbouncer",
        "config.dbPoolSize",
        "keda.maxReplicaCount",
        "externalDatabase.maxConnections",
    ):
        assert value in message
    # Autoscaling counts at its maximum: KEDA may run 10 email workers.
    keda = merge(
        CONNECTIONS,
        {
            "externalDatabase": {"maxConnections": 600},
            "notifier": {"email": {"keda": {"enabled": True}}},
        },
    )
    with pytest.raises(helm.HelmError, match=re.escape("notifier.email 10x64")):
        render(keda)
    assert render(merge(CONNECTIONS, {"externalDatabase": {"maxConnections": 205}}))


def test_pgbouncer_pools_the_app_within_the_budget() -> None:
    values = merge(
        BY_PARTS,
        {
            "externalDatabase": {"maxConnections": 100},
            "pgbouncer": {"enabled": True, "serviceMonitor": {"enabled": True}},
        },
    )
    rendered = render(values)
    for component in DATABASE_WORKLOADS:
        container = main_container(rendered.get("Deployment", name(component)))
        settings = settings_of(
            plain_env(container, **{"db-password": "pw", "redis-password": "pw"})
        )
        assert settings.database_url.endswith(f"@{name('pgbouncer')}:6432/boxoffice")
        assert settings.database_prepared_statements is False  # transaction pooling
    migrations = main_container(rendered.get("Job", name("migrations")))
    assert (
        env_of(migrations)["BOXOFFICE_DATABASE_HOST"]["value"] == "pg.internal"
    )  # DDL goes direct
    ini = rendered.get("ConfigMap", name("pgbouncer"))["data"]["pgbouncer.ini"]
    assert "pool_mode = transaction" in ini
    assert "boxoffice = host=pg.internal port=5432 dbname=boxoffice" in ini
    deployment = rendered.get("Deployment", name("pgbouncer"))
    userlist = pod(deployment)["initContainers"][0]
    assert userlist["command"][:3] == ["python", "-m", "boxoffice_db.pgbouncer"]
    assert [c["name"] for c in pod(deployment)["containers"]] == ["pgbouncer", "exporter"]
    monitor = rendered.get("ServiceMonitor", name("pgbouncer"))
    service = rendered.get("Service", name("pgbouncer"))
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert {"name": "metrics", "port": 9127, "targetPort": "metrics", "protocol": "TCP"} in service[
        "spec"
    ]["ports"]
    for obj in rendered.objects:
        validate(obj)
    too_many = merge(values, {"pgbouncer": {"maxDbConnections": 60}})
    with pytest.raises(helm.HelmError, match=re.escape("pgbouncer.maxDbConnections")):
        render(too_many)


def test_pgbouncer_needs_the_database_by_parts() -> None:
    with pytest.raises(
        helm.HelmError, match=re.escape("pgbouncer.enabled needs the database by parts")
    ):
        render(merge(CONNECTIONS, {"pgbouncer": {"enabled": True}}))


def test_the_notes_tell_the_connection_plan() -> None:
    assert "may open at its most replicas: 204." in render(CONNECTIONS).notes
    assert "Set externalDatabase.maxConnections" in render(CONNECTIONS).notes
    pooled = render(merge(BY_PARTS, {"pgbouncer": {"enabled": True}})).notes
    assert "(to PgBouncer, which opens at most 80 to PostgreSQL)" in pooled
