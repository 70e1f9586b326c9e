"""The `tracing` block: one place turns on OTLP export for every app pod, with its egress rule."""

from __future__ import annotations

from typing import Any

from tests.helm.chart import CONNECTIONS, FULLNAME, NAMESPACE, merge, name, render

TRACED = ("booking", "relay", "notifier-email", "notifier-sms", "reaper", "scheduler")
COLLECTOR = [
    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}
]


def collector_rules(policy: dict[str, Any], port: int) -> list[dict[str, Any]]:
    return [
        rule
        for rule in policy["spec"].get("egress", [])
        if {"port": port, "protocol": "TCP"} in rule.get("ports", [])
    ]


def test_an_otlp_endpoint_reaches_every_app_pod_with_one_egress_rule() -> None:
    rendered = render(
        merge(
            CONNECTIONS,
            {
                "tracing": {
                    "otlpEndpoint": "http://otel-collector.observability:4318",
                    "sampler": "parentbased_traceidratio",
                    "samplerArg": "0.1",
                    "resourceAttributes": {"deployment.environment": "prod"},
                    "networkPolicyPeers": COLLECTOR,
                }
            },
        )
    )
    config = rendered.get("ConfigMap", FULLNAME)["data"]
    assert config["OTEL_TRACES_EXPORTER"] == "otlp"
    assert config["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability:4318"
    assert config["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert config["OTEL_TRACES_SAMPLER_ARG"] == "0.1"
    assert config["OTEL_RESOURCE_ATTRIBUTES"] == (
        f"k8s.namespace.name={NAMESPACE},deployment.environment=prod"
    )
    for component in TRACED:
        rules = collector_rules(rendered.get("NetworkPolicy", name(component)), 4318)
        assert rules == [{"ports": [{"port": 4318, "protocol": "TCP"}], "to": COLLECTOR}], component
        pod = rendered.get("Deployment", name(component))["spec"]["template"]["spec"]
        assert {"configMapRef": {"name": FULLNAME}} in pod["containers"][0]["envFrom"]


def test_the_egress_port_comes_from_the_endpoint_or_its_scheme() -> None:
    rendered = render(merge(CONNECTIONS, {"tracing": {"otlpEndpoint": "https://otlp.example.com"}}))
    [rule] = collector_rules(rendered.get("NetworkPolicy", name("relay")), 443)
    assert "to" not in rule  # no peers given: any destination on that port


def test_no_endpoint_means_no_export_and_no_egress() -> None:
    rendered = render(CONNECTIONS)
    config = rendered.get("ConfigMap", FULLNAME)["data"]
    assert not [key for key in config if key.startswith("OTEL_")]
    for component in TRACED:
        assert not collector_rules(rendered.get("NetworkPolicy", name(component)), 4318)
