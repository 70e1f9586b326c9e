"""The optional Flower component: off by default, behind basic auth, reaching only Redis and DNS."""

from __future__ import annotations

import base64

import helm_python as helm
import pytest

from tests.helm.chart import (
    CHART,
    CONNECTIONS,
    FULLNAME,
    VALUE_SETS,
    env_of,
    merge,
    name,
    render,
    render_chart,
)
from tests.helm.netpol import OUTSIDE, can_connect, pod_labels

FLOWER_PORT, REDIS, SENTINEL, POSTGRES, SMTP, HTTPS, API, METRICS = (
    5555,
    6379,
    26379,
    5432,
    587,
    443,
    8000,
    9100,
)
WITH_SECRET = merge(
    CONNECTIONS, {"flower": {"enabled": True, "basicAuth": {"existingSecret": "ops-flower"}}}
)


def test_flower_is_off_by_default() -> None:
    for value_set in ("defaults", "minimal", "keda", "in-chart-datastores"):
        rendered = render(VALUE_SETS[value_set])
        assert not any("flower" in o["metadata"]["name"] for o in rendered.objects), value_set


@pytest.mark.parametrize(
    "basic_auth", [{}, {"username": "ops"}, {"password": "pw"}, {"existingSecretKey": "auth"}]
)
def test_enabling_flower_without_credentials_fails_the_render(basic_auth: dict[str, str]) -> None:
    values = merge(CONNECTIONS, {"flower": {"enabled": True, "basicAuth": basic_auth}})
    with pytest.raises(helm.HelmError, match=r"flower\.basicAuth\.existingSecret"):
        render_chart(CHART, values)


def test_created_credentials_are_stored_in_the_chart_secret_and_required() -> None:
    rendered = render(VALUE_SETS["all-features"])
    container = rendered.get("Deployment", name("flower"))["spec"]["template"]["spec"][
        "containers"
    ][0]
    ref = env_of(container)["FLOWER_BASIC_AUTH"]["valueFrom"]["secretKeyRef"]
    secret = rendered.get("Secret", ref["name"])
    assert base64.b64decode(secret["data"][ref["key"]]).decode() == "ops:flower-pw"
    assert container["command"][:4] == ["celery", "-A", "boxoffice_messaging.flower_app", "flower"]
    # The broker settings are the services' own (Sentinel URLs included).
    assert {"REDIS_URL", "DATABASE_URL"} <= env_of(container).keys()


def test_an_existing_secret_is_referenced_not_copied() -> None:
    rendered = render(WITH_SECRET)
    container = rendered.get("Deployment", name("flower"))["spec"]["template"]["spec"][
        "containers"
    ][0]
    ref = env_of(container)["FLOWER_BASIC_AUTH"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "ops-flower", "key": "FLOWER_BASIC_AUTH"}
    for secret in rendered.of_kind("Secret"):
        assert "FLOWER_BASIC_AUTH" not in secret.get("data", {})


def test_flower_pod_is_restricted_probed_and_served() -> None:
    rendered = render(VALUE_SETS["all-features"])
    deployment = rendered.get("Deployment", name("flower"))
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert deployment["spec"]["replicas"] == 1
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert security["seccompProfile"]["type"] == "RuntimeDefault"
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthcheck", "port": "http"}
    assert container["resources"]["limits"]["memory"]
    service = rendered.get("Service", name("flower"))
    assert service["spec"]["ports"] == [
        {"name": "http", "port": FLOWER_PORT, "targetPort": "http", "protocol": "TCP"}
    ]


def test_flower_reaches_exactly_redis_and_dns() -> None:
    rendered = render(WITH_SECRET)
    flower = pod_labels(rendered, name("flower"), "Deployment")
    assert can_connect(rendered, flower, OUTSIDE, REDIS)
    assert can_connect(rendered, flower, OUTSIDE, 53)
    for port in (POSTGRES, SMTP, HTTPS, 80, SENTINEL, API, METRICS):
        assert not can_connect(rendered, flower, OUTSIDE, port), port
    policy = rendered.get("NetworkPolicy", name("flower"))
    assert len(policy["spec"]["egress"]) == 2  # DNS, Redis: nothing more


def test_flower_follows_redis_to_the_in_chart_server_and_to_sentinel_ports() -> None:
    flower_on = {"flower": WITH_SECRET["flower"]}
    rendered = render(merge(VALUE_SETS["in-chart-datastores"], flower_on))
    flower = pod_labels(rendered, name("flower"), "Deployment")
    redis = rendered.get("StatefulSet", name("redis"))
    redis_labels = pod_labels(rendered, name("redis"), "StatefulSet")
    assert can_connect(rendered, flower, redis_labels, REDIS, redis)
    assert not can_connect(rendered, flower, OUTSIDE, REDIS)

    sentinel = merge(
        WITH_SECRET,
        {
            "externalRedis": {
                "existingSecret": "",
                "url": "sentinel://s1:26379;sentinel://s2:26379",
                "ports": [26379, 6379],
            }
        },
    )
    rendered = render(sentinel)
    flower = pod_labels(rendered, name("flower"), "Deployment")
    assert can_connect(rendered, flower, OUTSIDE, SENTINEL)
    assert can_connect(rendered, flower, OUTSIDE, REDIS)
    assert not can_connect(rendered, flower, OUTSIDE, POSTGRES)


def test_only_the_allowed_peers_reach_the_ui() -> None:
    rendered = render(VALUE_SETS["all-features"])
    target = rendered.get("Deployment", name("flower"))
    flower = pod_labels(rendered, name("flower"), "Deployment")
    booking = pod_labels(rendered, name("booking"), "Deployment")
    # all-features lets only the "ops" namespace in; the API pods are not there.
    assert not can_connect(rendered, booking, flower, FLOWER_PORT, target)
    assert not can_connect(rendered, OUTSIDE, flower, 6379, target)


def test_sentinel_urls_are_accepted_and_name_their_master() -> None:
    url = "sentinel://:pw@s1.internal:26379/0;sentinel://s2.internal:26379/0"
    values = {"externalRedis": {"url": url, "ports": [26379, 6379], "sentinelMaster": "boxoffice"}}
    rendered = render(merge(CONNECTIONS, values) | {"externalRedis": values["externalRedis"]})
    secret = rendered.get("Secret", name("secrets"))
    assert base64.b64decode(secret["data"]["REDIS_URL"]).decode() == url
    config = rendered.get("ConfigMap", "shop-boxoffice")
    assert config["data"]["BOXOFFICE_REDIS_SENTINEL_MASTER"] == "boxoffice"
    with helm.Chart.load(str(CHART)) as chart, pytest.raises(helm.HelmError):
        chart.validate_schema({"externalRedis": {"url": "memcached://cache:11211"}})


@pytest.mark.parametrize(
    ("values", "events"),
    [
        (CONNECTIONS, "false"),
        (WITH_SECRET, "true"),
        (merge(CONNECTIONS, {"config": {"celeryTaskEvents": True}}), "true"),
    ],
    ids=["default", "with-flower", "flower-outside-the-chart"],
)
def test_workers_send_task_events_only_for_a_flower(values: dict[str, object], events: str) -> None:
    """Task events cost a Redis publish per task state and only Flower reads them: the shared
    ConfigMap turns them on with Flower (or for one run elsewhere), off otherwise."""
    config = render(values).get("ConfigMap", FULLNAME)
    assert config["data"]["BOXOFFICE_CELERY_TASK_EVENTS"] == events
