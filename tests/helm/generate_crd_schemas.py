"""Write the JSON schemas of the CRD objects the chart renders into tests/helm/schemas/.

The schemas come from the cloudcoil model packages (pydantic models generated from the
Prometheus Operator and KEDA CRDs), pinned in tests/helm/tools, and, for the Gateway API's
HTTPRoute, from the npm package @kubernetes-models/gateway-api (its JSON schema, generated from
the Gateway API CRDs), fetched with `npm pack`. Like kubernetes-validate's --strict, every object
that lists its properties rejects any other key. Run `make helm-schemas`.
"""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from cloudcoil.models.keda import v1alpha1 as keda
from cloudcoil.models.prometheus_operator import v1 as monitoring

SCHEMAS = Path(__file__).parent / "schemas"

KINDS: dict[str, tuple[str, Any]] = {
    "ServiceMonitor": ("monitoring.coreos.com/v1", monitoring.ServiceMonitor),
    "PodMonitor": ("monitoring.coreos.com/v1", monitoring.PodMonitor),
    "PrometheusRule": ("monitoring.coreos.com/v1", monitoring.PrometheusRule),
    "ScaledObject": ("keda.sh/v1alpha1", keda.ScaledObject),
}


def strict(node: Any) -> Any:
    """Close every object that lists its properties, recursively."""
    if isinstance(node, dict):
        closed = {key: strict(value) for key, value in node.items()}
        if "properties" in closed and "additionalProperties" not in closed:
            closed["additionalProperties"] = False
        return closed
    if isinstance(node, list):
        return [strict(item) for item in node]
    return node


def schema_of(api_version: str, kind: str, model: Any) -> dict[str, Any]:
    schema: dict[str, Any] = strict(model.model_json_schema(by_alias=True, mode="validation"))
    schema["properties"]["apiVersion"] = {"const": api_version}
    schema["properties"]["kind"] = {"const": kind}
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema.pop("status", None)
    schema["properties"].pop("status", None)
    return schema


GATEWAY_API_MODELS = "@kubernetes-models/gateway-api@0.5.1"


def httproute_schema() -> dict[str, Any]:
    """gateway.networking.k8s.io/v1 HTTPRoute, from the schema literal in the npm package."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["npm", "pack", GATEWAY_API_MODELS, "--silent"], cwd=tmp, check=True)
        archive = next(Path(tmp).glob("*.tgz"))
        with tarfile.open(archive) as tar:
            member = tar.extractfile("package/gateway.networking.k8s.io/v1/HTTPRoute.js")
            assert member is not None
            source = member.read().decode()
    literal = re.search(r"const schema = (\{.*?\n\});\n", source, re.DOTALL)
    assert literal, "no schema literal in HTTPRoute.js"
    schema: dict[str, Any] = strict(json.loads(literal.group(1)))
    schema["properties"]["metadata"] = {"type": "object"}  # ObjectMeta: kubernetes-validate's job
    schema["properties"]["apiVersion"] = {"const": "gateway.networking.k8s.io/v1"}
    schema["properties"]["kind"] = {"const": "HTTPRoute"}
    schema["required"] = sorted({*schema["required"], "metadata"})
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["properties"].pop("status", None)
    return schema


def main() -> None:
    SCHEMAS.mkdir(exist_ok=True)
    schemas = {
        kind: schema_of(api_version, kind, model) for kind, (api_version, model) in KINDS.items()
    }
    schemas["HTTPRoute"] = httproute_schema()
    for kind, schema in schemas.items():
        path = SCHEMAS / f"{kind.lower()}.json"
        path.write_text(json.dumps(schema, indent=1) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
