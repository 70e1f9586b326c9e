"""Traffic into the API: an Ingress or a Gateway API HTTPRoute, validated against their schemas."""

from __future__ import annotations

import json
import re

import helm_python as helm
import pytest

from tests.helm.chart import CONNECTIONS, merge, name, render
from tests.helm.test_render import crd_validator, validate

INGRESS = {
    "booking": {
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
            "hosts": [
                {"host": "tickets.{{ .Release.Namespace }}.example.com", "paths": [{"path": "/"}]}
            ],
            "tls": [{"secretName": "tickets-tls", "hosts": ["tickets.boxoffice.example.com"]}],
        }
    }
}

ROUTE = {
    "booking": {
        "httpRoute": {
            "enabled": True,
            "parentRefs": [
                {"name": "public", "namespace": "gateway-system", "sectionName": "https"}
            ],
            "hostnames": ["tickets.example.com"],
            "paths": ["/v1", "/healthz"],
            "timeouts": {"request": "30s"},
        }
    }
}


def test_the_ingress_routes_its_hosts_to_the_api_service() -> None:
    rendered = render(merge(CONNECTIONS, INGRESS))
    ingress = rendered.get("Ingress", name("booking"))
    validate(ingress)
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "tickets.boxoffice.example.com"  # templated
    backend = rule["http"]["paths"][0]["backend"]["service"]
    service = rendered.get("Service", name("booking"))
    assert backend["name"] == service["metadata"]["name"]
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    assert ingress["spec"]["tls"] == [
        {"secretName": "tickets-tls", "hosts": ["tickets.boxoffice.example.com"]}
    ]


def test_the_http_route_attaches_to_the_gateway_and_reaches_the_api_service() -> None:
    rendered = render(merge(CONNECTIONS, ROUTE))
    route = rendered.get("HTTPRoute", name("booking"))
    validate(route)
    assert route["spec"]["parentRefs"] == [
        {"name": "public", "namespace": "gateway-system", "sectionName": "https"}
    ]
    rule = route["spec"]["rules"][0]
    assert [m["path"]["value"] for m in rule["matches"]] == ["/v1", "/healthz"]
    service = rendered.get("Service", name("booking"))
    port = service["spec"]["ports"][0]["port"]
    assert rule["backendRefs"] == [{"name": service["metadata"]["name"], "port": port}]
    assert rule["timeouts"] == {"request": "30s"}


def test_the_http_route_schema_is_not_vacuous() -> None:
    route = json.loads(
        json.dumps(render(merge(CONNECTIONS, ROUTE)).get("HTTPRoute", name("booking")))
    )
    route["spec"]["rules"][0]["backendRef"] = route["spec"]["rules"][0].pop("backendRefs")
    assert list(crd_validator("HTTPRoute").iter_errors(route))


def test_neither_is_rendered_by_default() -> None:
    rendered = render(CONNECTIONS)
    assert rendered.of_kind("Ingress") == []
    assert rendered.of_kind("HTTPRoute") == []


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"booking": {"ingress": {"enabled": True}}}, "booking.ingress.hosts"),
        ({"booking": {"httpRoute": {"enabled": True}}}, "booking.httpRoute.parentRefs"),
    ],
    ids=["ingress", "httproute"],
)
def test_half_a_configuration_is_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(helm.HelmError, match=re.escape(message)):
        render(merge(CONNECTIONS, values))
