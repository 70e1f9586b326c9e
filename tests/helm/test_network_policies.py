"""Default deny, then exactly what each component needs."""

from __future__ import annotations

import pytest

from tests.helm.chart import CONNECTIONS, VALUE_SETS, Rendered, merge, name, render
from tests.helm.netpol import OUTSIDE, can_connect, pod_labels

POSTGRES, REDIS, SMTP, HTTPS, METRICS, API = 5432, 6379, 587, 443, 9100, 8000
APP = ["booking", "relay", "notifier-email", "notifier-sms", "reaper", "scheduler"]


def labels(rendered: Rendered, component: str) -> dict[str, str]:
    kind = "StatefulSet" if component in ("postgresql", "redis") else "Deployment"
    return pod_labels(rendered, name(component), kind)


def test_default_deny_selects_every_pod_of_the_release() -> None:
    rendered = render(VALUE_SETS["in-chart-datastores"])
    deny = rendered.get("NetworkPolicy", name("default-deny"))
    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny["spec"]
    assert "egress" not in deny["spec"]
    for obj in rendered.objects:
        if obj["kind"] in ("Deployment", "StatefulSet"):
            pod = obj["spec"]["template"]["metadata"]["labels"]
            assert deny["spec"]["podSelector"]["matchLabels"].items() <= pod.items()


def test_api_reaches_external_postgresql_and_redis_and_nothing_else() -> None:
    rendered = render(CONNECTIONS)
    api = labels(rendered, "booking")
    assert can_connect(rendered, api, OUTSIDE, POSTGRES)
    assert can_connect(rendered, api, OUTSIDE, REDIS)
    assert can_connect(rendered, api, OUTSIDE, 53)
    for port in (SMTP, HTTPS, 80, 25, 6380, 22):
        assert not can_connect(rendered, api, OUTSIDE, port), port


def test_api_reaches_the_in_chart_postgresql_and_redis_and_nothing_else() -> None:
    rendered = render(VALUE_SETS["in-chart-datastores"])
    api = labels(rendered, "booking")
    pg = rendered.get("StatefulSet", name("postgresql"))
    redis = rendered.get("StatefulSet", name("redis"))
    assert can_connect(rendered, api, labels(rendered, "postgresql"), POSTGRES, pg)
    assert can_connect(rendered, api, labels(rendered, "redis"), REDIS, redis)
    # The datastores live in the cluster now: nothing else leaves the API pod.
    assert not can_connect(rendered, api, OUTSIDE, POSTGRES)
    assert not can_connect(rendered, api, OUTSIDE, REDIS)
    assert not can_connect(rendered, api, labels(rendered, "reaper"), METRICS)


def test_datastores_accept_only_the_release_components() -> None:
    rendered = render(VALUE_SETS["in-chart-datastores"])
    pg = rendered.get("StatefulSet", name("postgresql"))
    stranger = {"app.kubernetes.io/name": "something-else", "app.kubernetes.io/instance": "x"}
    assert not can_connect(rendered, stranger, labels(rendered, "postgresql"), POSTGRES, pg)
    for component in APP:
        assert can_connect(
            rendered, labels(rendered, component), labels(rendered, "postgresql"), POSTGRES, pg
        )
    # The datastores themselves open no connection.
    assert not can_connect(rendered, labels(rendered, "redis"), OUTSIDE, HTTPS)


@pytest.mark.parametrize("component", APP)
def test_components_cannot_call_each_other(component: str) -> None:
    rendered = render(CONNECTIONS)
    source = labels(rendered, component)
    for other in APP:
        if other != component:
            target = rendered.get("Deployment", name(other))
            port = API if other == "booking" else METRICS
            # No component needs another: the services talk through Redis and PostgreSQL only.
            assert not can_connect(rendered, source, labels(rendered, other), port, target)


def test_only_the_email_channel_reaches_smtp() -> None:
    rendered = render(CONNECTIONS)
    assert can_connect(rendered, labels(rendered, "notifier-email"), OUTSIDE, SMTP)
    for component in ["booking", "relay", "notifier-sms", "reaper", "scheduler"]:
        assert not can_connect(rendered, labels(rendered, component), OUTSIDE, SMTP), component


def test_only_the_sms_channel_reaches_the_sms_gateway() -> None:
    rendered = render(VALUE_SETS["all-features"])
    assert can_connect(rendered, labels(rendered, "notifier-sms"), OUTSIDE, HTTPS)
    assert not can_connect(rendered, labels(rendered, "notifier-email"), OUTSIDE, HTTPS)


def test_only_the_scheduler_reaches_the_kubernetes_api() -> None:
    rendered = render(CONNECTIONS)
    assert can_connect(rendered, labels(rendered, "scheduler"), OUTSIDE, 6443)
    for component in ["booking", "relay", "notifier-email", "notifier-sms", "reaper"]:
        assert not can_connect(rendered, labels(rendered, component), OUTSIDE, 6443), component


def test_metrics_are_open_to_the_named_scrapers_only() -> None:
    rendered = render(VALUE_SETS["all-features"])
    reaper = rendered.get("Deployment", name("reaper"))
    ingress = rendered.get("NetworkPolicy", name("reaper"))["spec"]["ingress"]
    assert ingress == [
        {
            "ports": [{"port": "metrics", "protocol": "TCP"}],
            "from": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
        }
    ]
    assert not can_connect(
        rendered, labels(rendered, "booking"), labels(rendered, "reaper"), METRICS, reaper
    )


def test_api_ingress_is_limited_when_asked() -> None:
    rendered = render(VALUE_SETS["all-features"])
    ingress = rendered.get("NetworkPolicy", name("booking"))["spec"]["ingress"]
    assert ingress[0]["from"] == [{"namespaceSelector": {"matchLabels": {"name": "edge"}}}]


def test_network_policies_can_be_turned_off() -> None:
    rendered = render(merge(CONNECTIONS, {"networkPolicy": {"enabled": False}}))
    assert rendered.of_kind("NetworkPolicy") == []
    # The evaluator is not vacuous: without policies, the API could reach any SMTP server.
    assert can_connect(rendered, labels(rendered, "booking"), OUTSIDE, SMTP)


def test_behind_pgbouncer_the_app_reaches_only_pgbouncer_which_reaches_postgresql() -> None:
    rendered = render(merge(VALUE_SETS["in-chart-datastores"], {"pgbouncer": {"enabled": True}}))
    pgbouncer = rendered.get("Deployment", name("pgbouncer"))
    pg = rendered.get("StatefulSet", name("postgresql"))
    bouncer = labels(rendered, "pgbouncer")
    for component in ["booking", "relay", "notifier-email", "notifier-sms", "reaper"]:
        app = labels(rendered, component)
        assert can_connect(rendered, app, bouncer, 6432, pgbouncer), component
        assert not can_connect(rendered, app, labels(rendered, "postgresql"), POSTGRES, pg)
    assert can_connect(rendered, bouncer, labels(rendered, "postgresql"), POSTGRES, pg)
    # The migration Job runs DDL on PostgreSQL itself.
    migrations = {**bouncer, "app.kubernetes.io/component": "migrations"}
    assert can_connect(rendered, migrations, labels(rendered, "postgresql"), POSTGRES, pg)
    stranger = {"app.kubernetes.io/name": "something-else", "app.kubernetes.io/instance": "x"}
    assert not can_connect(rendered, stranger, bouncer, 6432, pgbouncer)
    assert can_connect(rendered, OUTSIDE, bouncer, 9127, pgbouncer)  # the exporter, for Prometheus
