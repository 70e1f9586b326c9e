"""The scrape configuration the Prometheus Operator generates from the chart's monitors.

The e2e test has no Kubernetes, so service discovery is played by static targets that carry
the `__meta_kubernetes_*` labels Kubernetes SD would give the chart's rendered pods (their
template labels, container and port names) and Services; the relabeling rules are the ones
the operator writes for a PodMonitor or ServiceMonitor (selector keeps, port keep, namespace /
pod / container / service / endpoint labels, `jobLabel`, then the monitor's own
`relabelings`), in its order. Prometheus itself applies them, so the `job` and the other target
labels are what a cluster would give, derived from the chart and nothing written by hand.
`target_labels` applies the same rules in Python for tests without a Prometheus.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

Manifest = dict[str, Any]
Relabel = dict[str, Any]

COMPONENT = "app.kubernetes.io/component"


def sanitize(name: str) -> str:
    """A Kubernetes label name as a Prometheus label name (the operator's and SD's rule)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


@dataclass(frozen=True)
class Pod:
    """A pod of the rendered chart, as Kubernetes SD shows it, with a real address per port."""

    namespace: str
    name: str
    labels: dict[str, str]
    container: str
    addresses: dict[str, str]  # container port name -> host:port where a process listens


def pods(rendered: Iterable[Manifest], listening: dict[str, dict[str, str]]) -> list[Pod]:
    """One pod per rendered Deployment whose component has a process in `listening`."""
    found = []
    for doc in rendered:
        if doc.get("kind") != "Deployment":
            continue
        template = doc["spec"]["template"]
        labels = dict(template["metadata"]["labels"])
        ports = listening.get(labels.get(COMPONENT, ""))
        if ports is None:
            continue
        container = template["spec"]["containers"][0]
        names = {p["name"] for p in container.get("ports", [])}
        found.append(
            Pod(
                namespace=doc["metadata"]["namespace"],
                name=f"{doc['metadata']['name']}-7f9c4d-x2x9q",
                labels=labels,
                container=container["name"],
                addresses={n: a for n, a in ports.items() if n in names},
            )
        )
    return found


def _labels(prefix: str, labels: dict[str, str]) -> dict[str, str]:
    out = {}
    for key, value in labels.items():
        out[f"{prefix}_label_{sanitize(key)}"] = value
        out[f"{prefix}_labelpresent_{sanitize(key)}"] = "true"
    return out


def _pod_meta(pod: Pod, port: str) -> dict[str, str]:
    return {
        "__address__": pod.addresses[port],
        "__meta_kubernetes_namespace": pod.namespace,
        "__meta_kubernetes_pod_name": pod.name,
        "__meta_kubernetes_pod_container_name": pod.container,
        "__meta_kubernetes_pod_container_port_name": port,
        **_labels("__meta_kubernetes_pod", pod.labels),
    }


def _selector_keeps(selector: dict[str, Any], prefix: str) -> list[Relabel]:
    keeps = []
    for key, value in (selector.get("matchLabels") or {}).items():
        keeps.append((key, re.escape(str(value))))
    for expr in selector.get("matchExpressions") or []:
        assert expr["operator"] == "In", f"not modelled: {expr}"
        keeps.append((expr["key"], "|".join(re.escape(v) for v in expr["values"])))
    return [
        {
            "action": "keep",
            "source_labels": [
                f"{prefix}_label_{sanitize(k)}",
                f"{prefix}_labelpresent_{sanitize(k)}",
            ],
            "regex": f"({regex});true",
        }
        for k, regex in keeps
    ]


def _user(relabelings: Iterable[dict[str, Any]]) -> list[Relabel]:
    keys = {"sourceLabels": "source_labels", "targetLabel": "target_label"}
    return [
        {keys.get(k, k): (v.lower() if k == "action" else v) for k, v in r.items()}
        for r in relabelings
    ]


def _copy_if_set(source: str, target: str) -> Relabel:
    """Set `target` to the value of `source` where that is not empty."""
    return {
        "source_labels": [source],
        "target_label": target,
        "regex": "(.+)",
        "replacement": "${1}",
    }


def _pod_target_labels(spec: Manifest) -> list[Relabel]:
    """The monitor's podTargetLabels, each copied from the pod's label of that name."""
    return [
        _copy_if_set(f"__meta_kubernetes_pod_label_{sanitize(label)}", sanitize(label))
        for label in spec.get("podTargetLabels") or []
    ]


def _namespace_keep(monitor: Manifest) -> list[Relabel]:
    names = monitor["spec"].get("namespaceSelector", {}).get("matchNames") or [
        monitor["metadata"]["namespace"]
    ]
    return [
        {
            "action": "keep",
            "source_labels": ["__meta_kubernetes_namespace"],
            "regex": "|".join(names),
        }
    ]


def _common(kind: str, monitor: Manifest, endpoint: dict[str, Any], index: int) -> dict[str, Any]:
    meta = monitor["metadata"]
    config: dict[str, Any] = {
        "job_name": f"{kind}/{meta['namespace']}/{meta['name']}/{index}",
        "metrics_path": endpoint.get("path", "/metrics"),
        "scrape_interval": endpoint.get("interval", "30s"),
        "honor_labels": False,
    }
    if endpoint.get("scrapeTimeout"):
        config["scrape_timeout"] = endpoint["scrapeTimeout"]
    if endpoint.get("metricRelabelings"):
        config["metric_relabel_configs"] = _user(endpoint["metricRelabelings"])
    return config


def podmonitor_config(monitor: Manifest, index: int, all_pods: list[Pod]) -> dict[str, Any]:
    """The operator's scrape config for a PodMonitor's endpoint `index`."""
    spec, meta = monitor["spec"], monitor["metadata"]
    endpoint = spec["podMetricsEndpoints"][index]
    rules: list[Relabel] = [{"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"}]
    rules += _namespace_keep(monitor) + _selector_keeps(spec["selector"], "__meta_kubernetes_pod")
    rules += [
        {
            "action": "keep",
            "source_labels": ["__meta_kubernetes_pod_container_port_name"],
            "regex": endpoint["port"],
        },
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
    ]
    rules += _pod_target_labels(spec)
    rules.append({"target_label": "job", "replacement": f"{meta['namespace']}/{meta['name']}"})
    if spec.get("jobLabel"):
        source = f"__meta_kubernetes_pod_label_{sanitize(spec['jobLabel'])}"
        rules.append(_copy_if_set(source, "job"))
    rules.append({"target_label": "endpoint", "replacement": endpoint["port"]})
    rules += _user(endpoint.get("relabelings") or [])
    targets = [
        {
            "targets": [p.addresses[port]],
            "labels": {k: v for k, v in _pod_meta(p, port).items() if k != "__address__"},
        }
        for p in all_pods
        for port in p.addresses
    ]
    return {
        **_common("podMonitor", monitor, endpoint, index),
        "relabel_configs": rules,
        "static_configs": targets,
    }


def servicemonitor_config(
    monitor: Manifest, index: int, services: list[Manifest], all_pods: list[Pod]
) -> dict[str, Any]:
    """The operator's scrape config for a ServiceMonitor's endpoint `index` (endpoints role)."""
    spec = monitor["spec"]
    endpoint = spec["endpoints"][index]
    rules: list[Relabel] = [{"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"}]
    rules += _namespace_keep(monitor) + _selector_keeps(
        spec["selector"], "__meta_kubernetes_service"
    )
    rules += [
        {
            "action": "keep",
            "source_labels": ["__meta_kubernetes_endpoint_port_name"],
            "regex": endpoint["port"],
        },
        {
            "source_labels": [
                "__meta_kubernetes_endpoint_address_target_kind",
                "__meta_kubernetes_endpoint_address_target_name",
            ],
            "separator": ";",
            "regex": "Pod;(.*)",
            "replacement": "${1}",
            "target_label": "pod",
        },
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
    ]
    rules += _pod_target_labels(spec)
    rules.append(
        {
            "source_labels": ["__meta_kubernetes_service_name"],
            "target_label": "job",
            "replacement": "${1}",
        }
    )
    if spec.get("jobLabel"):
        source = f"__meta_kubernetes_service_label_{sanitize(spec['jobLabel'])}"
        rules.append(_copy_if_set(source, "job"))
    rules.append({"target_label": "endpoint", "replacement": endpoint["port"]})
    rules += _user(endpoint.get("relabelings") or [])
    targets = []
    for service in services:
        selector = service["spec"].get("selector") or {}
        for service_port in service["spec"]["ports"]:
            for pod in all_pods:
                target_port = str(service_port.get("targetPort", service_port["port"]))
                if (
                    any(pod.labels.get(k) != v for k, v in selector.items())
                    or target_port not in pod.addresses
                ):
                    continue
                meta = _pod_meta(pod, target_port) | _labels(
                    "__meta_kubernetes_service", service["metadata"].get("labels", {})
                )
                meta |= {
                    "__meta_kubernetes_service_name": service["metadata"]["name"],
                    "__meta_kubernetes_endpoint_port_name": service_port.get("name", ""),
                    "__meta_kubernetes_endpoint_address_target_kind": "Pod",
                    "__meta_kubernetes_endpoint_address_target_name": pod.name,
                }
                address = meta.pop("__address__")
                targets.append({"targets": [address], "labels": meta})
    return {
        **_common("serviceMonitor", monitor, endpoint, index),
        "relabel_configs": rules,
        "static_configs": targets,
    }


def scrape_configs(rendered: list[Manifest], all_pods: list[Pod]) -> list[dict[str, Any]]:
    """Every scrape config the operator would write for the rendered monitors."""
    services = [d for d in rendered if d.get("kind") == "Service"]
    configs = []
    for doc in rendered:
        if doc.get("kind") == "PodMonitor":
            for i in range(len(doc["spec"]["podMetricsEndpoints"])):
                configs.append(podmonitor_config(doc, i, all_pods))
        elif doc.get("kind") == "ServiceMonitor":
            for i in range(len(doc["spec"]["endpoints"])):
                configs.append(servicemonitor_config(doc, i, services, all_pods))
    return configs


def relabel(labels: dict[str, str], rules: list[Relabel]) -> dict[str, str] | None:
    """Prometheus's relabeling (replace, keep, drop); None when the target is dropped."""
    out = dict(labels)
    for rule in rules:
        action = rule.get("action", "replace")
        value = rule.get("separator", ";").join(
            out.get(s, "") for s in rule.get("source_labels", [])
        )
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        if action == "keep" and not match:
            return None
        if action == "drop" and match:
            return None
        if action == "replace" and match:
            template = re.sub(r"\$\{?(\d+)\}?", r"\\g<\1>", rule.get("replacement", "$1"))
            replacement = match.expand(template)
            if replacement:
                out[rule["target_label"]] = replacement
            else:
                out.pop(rule["target_label"], None)
        assert action in {"replace", "keep", "drop"}, f"not modelled: {action}"
    return out


def target_labels(config: dict[str, Any]) -> list[dict[str, str]]:
    """The labels of every target `config` keeps, as Prometheus shows them (no `__` labels)."""
    found = []
    for group in config["static_configs"]:
        for address in group["targets"]:
            labels = relabel(
                {"__address__": address, "job": config["job_name"], **group["labels"]},
                config["relabel_configs"],
            )
            if labels is None:
                continue
            labels.setdefault("instance", labels["__address__"])
            found.append({k: v for k, v in labels.items() if not k.startswith("__")})
    return found
