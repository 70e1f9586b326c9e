"""Whether this process runs in a Kubernetes pod (kept apart: the client is slow to import)."""

from __future__ import annotations

import os
from pathlib import Path

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def in_cluster() -> bool:
    """True inside a pod that has a service account token mounted."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and (SERVICE_ACCOUNT / "token").exists()


def current_namespace(default: str = "default") -> str:
    """The pod's namespace: POD_NAMESPACE (downward API), else its service account's."""
    if namespace := os.environ.get("POD_NAMESPACE"):
        return namespace
    path = SERVICE_ACCOUNT / "namespace"
    return path.read_text().strip() if path.exists() else default
