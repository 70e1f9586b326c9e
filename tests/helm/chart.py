"""Render the chart with the real Helm engine (helm-python-sdk bundles Helm's Go library)."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from unittest import mock

import helm_python as helm
import yaml
from boxoffice_settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "boxoffice"
RELEASE = "shop"
NAMESPACE = "boxoffice"
FULLNAME = f"{RELEASE}-boxoffice"
KUBERNETES_VERSION = "1.35.0"

Values = dict[str, Any]
Manifest = dict[str, Any]

# A connection for every value set but the defaults: URLs are what most installs give.
CONNECTIONS: Values = {
    "externalDatabase": {"existingSecret": "boxoffice-db", "existingSecretKey": "url"},
    "externalRedis": {"existingSecret": "boxoffice-redis", "existingSecretKey": "url"},
}

ALL_FEATURES: Values = {
    "externalDatabase": {"url": "postgresql://boxoffice:pw@db.internal:5432/boxoffice"},
    "externalRedis": {"url": "rediss://:pw@redis.internal:6380/0", "ports": [6380]},
    "smtp": {
        "host": "smtp.internal",
        "username": "mailer",
        "password": "smtp-pw",
        "networkPolicyPeers": [{"ipBlock": {"cidr": "10.0.7.0/24"}}],
    },
    "sms": {
        "gatewayUrl": "https://sms.example.com/2010-04-01/Accounts/AC1/Messages.json",
        "account": "AC1",
        "existingSecret": "boxoffice-sms",
        "networkPolicyPeers": [{"ipBlock": {"cidr": "203.0.113.0/24"}}],
    },
    "apiKey": {"existingSecret": "boxoffice-api-key"},
    "config": {
        "cancelCutoffMinutes": 60,
        "seatCacheTtlSeconds": 120,
        "idempotencyTtlSeconds": 3600,
        "rateLimit": {"requests": 1200, "windowSeconds": 30},
    },
    "payments": {
        "timeoutSeconds": 5,
        "razorpay": {
            "keyId": "rzp_live_0123456789abcd",
            "existingSecret": "boxoffice-razorpay",
            "networkPolicyPeers": [{"ipBlock": {"cidr": "198.51.100.0/24"}}],
        },
    },
    "booking": {
        "autoscaling": {"enabled": True},
        "service": {"type": "LoadBalancer"},
        "networkPolicy": {
            "ingressFrom": [{"namespaceSelector": {"matchLabels": {"name": "edge"}}}]
        },
    },
    "notifier": {
        "reportRecipients": ["ops@example.com"],
        "email": {"keda": {"enabled": True}},
        "sms": {
            "autoscaling": {"enabled": True},
            "networkPolicy": {"extraEgress": [{"ports": [{"port": 443, "protocol": "TCP"}]}]},
        },
    },
    "reaper": {"keda": {"enabled": True, "targetTasksPerReplica": 8}},
    "scheduler": {
        "leaderElection": {"leaseDurationSeconds": 30, "renewDeadlineSeconds": 20},
        "schedule": {"daily-report": {"cron": "0 1 * * *"}, "purge-retention": {"enabled": False}},
    },
    "relay": {"podDisruptionBudget": {"enabled": True}},
    "flower": {
        "enabled": True,
        "basicAuth": {"username": "ops", "password": "flower-pw"},
        "networkPolicy": {"ingressFrom": [{"namespaceSelector": {"matchLabels": {"name": "ops"}}}]},
    },
    "monitoring": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "podMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "grafanaDashboards": {"enabled": True},
    },
    "networkPolicy": {
        "metricsFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]
    },
}

MINIMAL: Values = {
    **CONNECTIONS,
    "relay": {"enabled": True},
    "notifier": {"sms": {"enabled": False}},
    "scheduler": {"replicas": 1, "podDisruptionBudget": {"enabled": False}},
    "networkPolicy": {"enabled": False},
    "migrations": {"enabled": False},
    "booking": {"replicas": 1, "podDisruptionBudget": {"enabled": False}},
}

KEDA: Values = {
    **CONNECTIONS,
    "notifier": {"email": {"keda": {"enabled": True}}, "sms": {"keda": {"enabled": True}}},
    "reaper": {"keda": {"enabled": True}},
}

TRY_IT_OUT: Values = {
    # A given password: a generated one would change with every `helm template`.
    "postgresql": {"enabled": True, "auth": {"password": "try-it-out-Zoë"}},
    "redis": {"enabled": True},
}

VALUE_SETS: dict[str, Values] = {
    "defaults": {},
    "all-features": ALL_FEATURES,
    "minimal": MINIMAL,
    "keda": KEDA,
    "in-chart-datastores": TRY_IT_OUT,
}


@dataclass(frozen=True)
class Rendered:
    """The objects one render produced, with the NOTES apart."""

    objects: tuple[Manifest, ...]
    notes: str

    def of_kind(self, kind: str) -> list[Manifest]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> Manifest:
        matches = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
        return matches[0]

    def find(self, kind: str, name: str) -> Manifest | None:
        matches = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        return matches[0] if matches else None

    def names(self, kind: str) -> set[str]:
        return {o["metadata"]["name"] for o in self.of_kind(kind)}


def name(component: str) -> str:
    """The object name of a component in the test release."""
    return f"{FULLNAME}-{component}"


def render_chart(chart_dir: Path, values: Values) -> Rendered:
    with helm.Chart.load(str(chart_dir)) as chart:
        chart.validate_schema(values)
        files = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects: list[Manifest] = []
    notes = ""
    for path, text in sorted(files.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return Rendered(tuple(objects), notes)


@lru_cache(maxsize=64)
def _render_cached(values_json: str) -> Rendered:
    return render_chart(CHART, json.loads(values_json))


def render(values: Values | None = None) -> Rendered:
    """Render the chart for `values` (cached: the objects must not be mutated)."""
    return _render_cached(json.dumps(values or {}, sort_keys=True))


def merge(base: Values, override: Values) -> Values:
    """Deep-merge `override` into a copy of `base`, as Helm merges value files."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def pod_specs(rendered: Rendered) -> Iterator[tuple[Manifest, Manifest]]:
    """(object, pod spec) for every workload."""
    for obj in rendered.objects:
        if obj["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield obj, obj["spec"]["template"]["spec"]


def env_of(container: Manifest) -> dict[str, Manifest]:
    return {e["name"]: e for e in container.get("env", [])}


def settings_from_env(env: dict[str, str]) -> Settings:
    """The Settings a process would build from exactly `env` (the variables a pod gets)."""
    base = {"DATABASE_URL": "postgresql://db/boxoffice", "REDIS_URL": "redis://redis:6379/0"}
    with mock.patch.dict(os.environ, {**base, **env}, clear=True):
        return Settings()
