"""Every value set renders, and every object is valid for Kubernetes or for its CRD."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest

from tests.helm.chart import CHART, KUBERNETES_VERSION, VALUE_SETS, Manifest, render

SCHEMAS = Path(__file__).parent / "schemas"
CRD_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
}


@lru_cache
def crd_validator(kind: str) -> Any:
    schema = json.loads((SCHEMAS / f"{kind.lower()}.json").read_text())
    return jsonschema.Draft202012Validator(schema)


def validate(obj: Manifest) -> None:
    if (obj["apiVersion"], obj["kind"]) in CRD_KINDS:
        errors = [e.message for e in crd_validator(obj["kind"]).iter_errors(obj)]
        assert not errors, f"{obj['kind']}/{obj['metadata']['name']}: {errors}"
    else:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_rendered_object_is_valid_for_kubernetes(value_set: str) -> None:
    rendered = render(VALUE_SETS[value_set])
    assert rendered.of_kind("Deployment"), "nothing rendered"
    for obj in rendered.objects:
        validate(obj)


def test_all_features_render_the_crd_objects() -> None:
    kinds = {o["kind"] for o in render(VALUE_SETS["all-features"]).objects}
    assert {"ServiceMonitor", "PodMonitor", "ScaledObject", "HorizontalPodAutoscaler"} <= kinds


def test_strict_validation_catches_an_unknown_field() -> None:
    """The validators are not vacuous: a misspelt field fails."""
    deployment = json.loads(json.dumps(render().of_kind("Deployment")[0]))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    scaled = json.loads(json.dumps(render(VALUE_SETS["keda"]).of_kind("ScaledObject")[0]))
    scaled["spec"]["maxReplicas"] = 3
    assert list(crd_validator("ScaledObject").iter_errors(scaled))


def test_helm_lint_is_clean() -> None:
    report = helm.lint(str(CHART), strict=True, kube_version=f"v{KUBERNETES_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems, report
    assert not report["errors"], report


@pytest.mark.parametrize("value_set", ["all-features", "keda"])
def test_helm_lint_is_clean_with_features_on(value_set: str) -> None:
    report = helm.lint(str(CHART), VALUE_SETS[value_set], strict=True)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems, report
    assert not report["errors"], report
