"""docs/openapi.json: the booking API's OpenAPI document, exported from the app itself."""

from __future__ import annotations

import json
import os
from pathlib import Path

from boxoffice_codegen.paths import OPENAPI_PATH


def render_openapi() -> str:
    """The document as the running API serves it at /openapi.json, pretty-printed."""
    # Imported here: building the app is only needed for this artefact.
    from boxoffice_booking.app import create_app

    # Only the routes matter: no tracer (which would want a database engine to instrument).
    previous = os.environ.get("OTEL_SDK_DISABLED")
    os.environ["OTEL_SDK_DISABLED"] = "true"
    try:
        document = create_app().openapi()
    finally:
        if previous is None:
            del os.environ["OTEL_SDK_DISABLED"]
        else:
            os.environ["OTEL_SDK_DISABLED"] = previous
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def export_openapi(path: Path = OPENAPI_PATH) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_openapi(), encoding="utf-8")


def openapi_is_stale(path: Path = OPENAPI_PATH) -> bool:
    return not path.exists() or path.read_text(encoding="utf-8") != render_openapi()
