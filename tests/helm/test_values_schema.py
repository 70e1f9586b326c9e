"""values.schema.json: values.yaml obeys it, unknown keys fail, every value is documented."""

from __future__ import annotations

import json
from typing import Any

import helm_python as helm
import jsonschema
import pytest
import yaml

from tests.helm.chart import CHART

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())


def test_values_yaml_validates_against_the_schema() -> None:
    jsonschema.Draft7Validator(SCHEMA).validate(DEFAULTS)


@pytest.mark.parametrize(
    "values",
    [
        {"replicaCount": 3},
        {"booking": {"replicaz": 3}},
        {"notifier": {"email": {"keda": {"enabeld": True}}}},
        {"notifier": {"whatsapp": {"enabled": True}}},
        {"monitoring": {"serviceMonitor": {"intervall": "10s"}}},
    ],
    ids=["top-level", "component", "nested", "unknown-channel", "monitoring"],
)
def test_helm_rejects_an_unknown_key(values: dict[str, Any]) -> None:
    with helm.Chart.load(str(CHART)) as chart, pytest.raises(helm.HelmError):
        chart.validate_schema(values)


@pytest.mark.parametrize(
    "values",
    [
        {"booking": {"replicas": "two"}},
        {"config": {"environment": "staging"}},
        {"externalDatabase": {"url": "mysql://x"}},
        {"apiKey": {"bootstrapKey": "too-short"}},
        {"metricsPort": 70000},
    ],
    ids=["type", "enum", "database-url", "short-api-key", "port-range"],
)
def test_helm_rejects_a_bad_value(values: dict[str, Any]) -> None:
    with helm.Chart.load(str(CHART)) as chart, pytest.raises(helm.HelmError):
        chart.validate_schema(values)


def undocumented(schema: dict[str, Any], path: str = "") -> list[str]:
    """Paths of the schema's own properties (not $ref'd Kubernetes types) with no description."""
    missing = []
    for key, sub in schema.get("properties", {}).items():
        where = f"{path}.{key}" if path else key
        if not sub.get("description"):
            missing.append(where)
        missing.extend(undocumented(sub, where))
    return missing


def closed_objects_missing(schema: dict[str, Any], path: str = "") -> list[str]:
    """Objects with properties that would still accept unknown keys."""
    missing = [] if schema.get("additionalProperties") is False else [path or "<root>"]
    for key, sub in schema.get("properties", {}).items():
        if "properties" in sub:
            missing.extend(closed_objects_missing(sub, f"{path}.{key}" if path else key))
    return missing


def test_every_value_is_documented_in_the_schema() -> None:
    assert undocumented(SCHEMA) == []


def test_every_object_in_the_schema_rejects_unknown_keys() -> None:
    assert closed_objects_missing(SCHEMA) == []


def test_every_key_of_values_yaml_is_in_the_schema() -> None:
    def walk(values: dict[str, Any], schema: dict[str, Any], path: str) -> list[str]:
        missing = []
        for key, value in values.items():
            sub = schema.get("properties", {}).get(key)
            if sub is None:
                missing.append(f"{path}.{key}")
            elif isinstance(value, dict) and "properties" in sub:
                missing.extend(walk(value, sub, f"{path}.{key}"))
        return missing

    assert walk(DEFAULTS, SCHEMA, "") == []


def test_no_secret_has_a_default() -> None:
    secrets = [
        DEFAULTS["externalDatabase"]["url"],
        DEFAULTS["externalRedis"]["url"],
        DEFAULTS["smtp"]["password"],
        DEFAULTS["apiKey"]["bootstrapKey"],
        DEFAULTS["postgresql"]["auth"]["password"],
    ]
    assert secrets == ["", "", "", "", ""]


def test_the_readme_values_table_is_current() -> None:
    from tests.helm.values_table import README, current_block, table

    assert current_block(README.read_text()) == table(), (
        "deploy/README.md is stale: run `uv run python -m tests.helm.values_table --write`"
    )
