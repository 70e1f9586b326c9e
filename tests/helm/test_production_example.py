"""deploy/helm/examples/production.yaml, the install deploy/README.md shows: renders, valid."""

from __future__ import annotations

from functools import cache

import yaml

from tests.helm.chart import ROOT, Manifest, Rendered, env_of, name, render
from tests.helm.test_render import validate

EXAMPLE = ROOT / "deploy" / "helm" / "examples" / "production.yaml"


@cache
def production() -> Rendered:
    return render(yaml.safe_load(EXAMPLE.read_text()))


def container(deployment: Manifest) -> Manifest:
    spec: Manifest = deployment["spec"]["template"]["spec"]["containers"][0]
    return spec


def test_the_production_example_renders_valid_objects() -> None:
    rendered = production()
    assert len(rendered.objects) > 30
    for obj in rendered.objects:
        validate(obj)


def test_the_app_reaches_postgresql_through_pgbouncer_and_migrates_directly() -> None:
    rendered = production()
    api = env_of(container(rendered.get("Deployment", name("booking"))))
    assert api["BOXOFFICE_DATABASE_HOST"]["value"] == name("pgbouncer")
    assert api["BOXOFFICE_DATABASE_PREPARED_STATEMENTS"]["value"] == "false"
    assert api["BOXOFFICE_DATABASE_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "boxoffice-db",
        "key": "password",
    }
    job = env_of(container(rendered.get("Job", name("migrations"))))
    assert job["BOXOFFICE_DATABASE_HOST"]["value"] == "boxoffice-db.db.svc.cluster.local"
    ini = rendered.get("ConfigMap", name("pgbouncer"))["data"]["pgbouncer.ini"]
    assert "host=boxoffice-db.db.svc.cluster.local port=5432" in ini
    assert "server_tls_sslmode = verify-full" in ini
    assert rendered.get("ServiceMonitor", name("pgbouncer"))


def test_redis_is_reached_through_sentinel() -> None:
    rendered = production()
    config = rendered.get("ConfigMap", "shop-boxoffice")["data"]
    assert config["BOXOFFICE_REDIS_SENTINEL_MASTER"] == "boxoffice"
    api = env_of(container(rendered.get("Deployment", name("booking"))))
    assert api["REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "boxoffice-redis",
        "key": "REDIS_URL",
    }


def test_every_component_sends_traces_to_the_collector_it_may_reach() -> None:
    """OTLP over HTTP (the exporter the image installs), with each pod's egress rule to it."""
    rendered = production()
    config = rendered.get("ConfigMap", "shop-boxoffice")["data"]
    assert config["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability.svc:4318"
    assert config.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf") == "http/protobuf"
    assert "k8s.namespace.name=boxoffice" in config["OTEL_RESOURCE_ATTRIBUTES"]
    for component in ("booking", "relay", "notifier-email", "reaper", "scheduler"):
        deployment = rendered.get("Deployment", name(component))
        refs = container(deployment)["envFrom"]
        assert {"configMapRef": {"name": "shop-boxoffice"}} in refs, component
        egress = rendered.get("NetworkPolicy", name(component))["spec"]["egress"]
        assert any({"port": 4318, "protocol": "TCP"} in rule.get("ports", []) for rule in egress), (
            component
        )


def test_the_api_trusts_the_ingress_for_client_addresses() -> None:
    api = env_of(container(production().get("Deployment", name("booking"))))
    config = production().get("ConfigMap", "shop-boxoffice")["data"]
    proxies = api.get("BOXOFFICE_TRUSTED_PROXIES", {}).get("value") or config.get(
        "BOXOFFICE_TRUSTED_PROXIES"
    )
    assert proxies == "10.244.0.0/16"


def test_the_api_is_behind_the_ingress_with_tls() -> None:
    ingress = production().get("Ingress", name("booking"))
    assert ingress["spec"]["rules"][0]["host"] == "tickets.example.com"
    assert ingress["spec"]["tls"][0]["secretName"] == "tickets-example-com-tls"
