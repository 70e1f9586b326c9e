"""A small NetworkPolicy evaluator: is this connection between two of the chart's pods allowed?

It follows the Kubernetes semantics the chart relies on: a pod selected by no policy of a
direction is open in that direction; once selected, a connection needs a rule in some
selecting policy whose peers (none = everyone) and ports (none = all) match. Peers are the
chart's own pods (podSelector in the release namespace) or "outside" (any address that is
not one of its pods, e.g. a managed PostgreSQL).
"""

from __future__ import annotations

from typing import Any

from tests.helm.chart import Manifest, Rendered

OUTSIDE: dict[str, str] = {}  # the labels of an address that is not a pod of the release


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        present = expression["key"] in labels
        if (
            expression["operator"] == "In"
            and labels.get(expression["key"]) not in expression["values"]
        ):
            return False
        if (
            expression["operator"] == "NotIn"
            and labels.get(expression["key"]) in expression["values"]
        ):
            return False
        if expression["operator"] == "Exists" and not present:
            return False
    return True


def peer_matches(peers: list[dict[str, Any]] | None, labels: dict[str, str]) -> bool:
    if not peers:
        return True
    for peer in peers:
        if "ipBlock" in peer:
            if labels is OUTSIDE:
                return True
            continue
        if labels is OUTSIDE:
            continue  # pod and namespace selectors only ever match pods
        if "podSelector" in peer and not selects(peer["podSelector"], labels):
            continue
        return True
    return False


def port_matches(ports: list[dict[str, Any]] | None, port: int, named: dict[str, int]) -> bool:
    if not ports:
        return True
    for entry in ports:
        wanted = entry.get("port")
        if wanted is None or wanted == port or named.get(str(wanted)) == port:
            return True
    return False


def _allowed(
    rendered: Rendered,
    pod: dict[str, str],
    direction: str,
    peer: dict[str, str],
    port: int,
    named: dict[str, int],
) -> bool:
    kind = "Ingress" if direction == "ingress" else "Egress"
    policies = [
        p
        for p in rendered.of_kind("NetworkPolicy")
        if selects(p["spec"]["podSelector"], pod) and kind in p["spec"].get("policyTypes", [])
    ]
    if not policies:
        return True
    side = "from" if direction == "ingress" else "to"
    return any(
        peer_matches(rule.get(side), peer) and port_matches(rule.get("ports"), port, named)
        for policy in policies
        for rule in policy["spec"].get(direction, [])
    )


def pod_labels(rendered: Rendered, workload: str, kind: str = "Deployment") -> dict[str, str]:
    labels: dict[str, str] = rendered.get(kind, workload)["spec"]["template"]["metadata"]["labels"]
    return labels


def named_ports(workload: Manifest | None) -> dict[str, int]:
    if workload is None:
        return {}
    return {
        p["name"]: p["containerPort"]
        for c in workload["spec"]["template"]["spec"]["containers"]
        for p in c.get("ports", [])
        if "name" in p
    }


def can_connect(
    rendered: Rendered,
    source: dict[str, str],
    destination: dict[str, str],
    port: int,
    destination_workload: Manifest | None = None,
) -> bool:
    """Both the source's egress and (for a pod) the destination's ingress allow it."""
    named = named_ports(destination_workload)
    egress = _allowed(rendered, source, "egress", destination, port, named)
    if destination is OUTSIDE:
        return egress
    return egress and _allowed(rendered, destination, "ingress", source, port, named)
