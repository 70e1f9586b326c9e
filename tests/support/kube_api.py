"""A local HTTP server speaking the Kubernetes API for `Lease` objects, as the API server does.

It keeps leases in memory and implements GET, POST (create) and PUT (replace) on
/apis/coordination.k8s.io/v1/namespaces/{ns}/leases[/{name}], with `resourceVersion`
optimistic concurrency: a PUT whose resourceVersion is not the stored one is a 409
Conflict, a POST of an existing name a 409 AlreadyExists, a GET of a missing one a 404;
every answer is a `Status` or a `Lease` JSON object like the real server's.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from typing import Any

from boxoffice_devstack.json_http import BackgroundHttpServer, JsonRequestHandler
from boxoffice_devstack.servers import free_port

LEASE_PATH = re.compile(
    r"^/apis/coordination\.k8s\.io/v1/namespaces/(?P<ns>[^/]+)/leases(?:/(?P<name>[^/?]+))?"
)


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def not_found(name: str) -> dict[str, Any]:
    return status(404, "NotFound", f'leases.coordination.k8s.io "{name}" not found')


class LeaseStore:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.leases: dict[tuple[str, str], dict[str, Any]] = {}
        self.version = 0
        self.conflicts = 0
        self.writes = 0
        # Set to make the "API server" unreachable (answers 503) for tests of lost renewals.
        self.down = threading.Event()
        # Called before a PUT is applied, so a test can slip another write in between.
        self.before_replace: Callable[[], None] | None = None

    def lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            found = self.leases.get((namespace, name))
            return json.loads(json.dumps(found)) if found else None

    def _next_version(self) -> str:
        self.version += 1
        return str(self.version)

    def get(self, ns: str, name: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            lease = self.leases.get((ns, name))
            if lease is None:
                return 404, not_found(name)
            return 200, lease

    def create(self, ns: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = body.get("metadata", {}).get("name")
        if not name:
            return 422, status(422, "Invalid", "metadata.name: Required value")
        with self.lock:
            if (ns, name) in self.leases:
                return 409, status(
                    409, "AlreadyExists", f'leases.coordination.k8s.io "{name}" already exists'
                )
            lease = self._stored(ns, name, body)
            self.leases[(ns, name)] = lease
            self.writes += 1
            return 201, lease

    def replace(self, ns: str, name: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            current = self.leases.get((ns, name))
            if current is None:
                return 404, not_found(name)
            sent_version = body.get("metadata", {}).get("resourceVersion")
            if not sent_version or sent_version != current["metadata"]["resourceVersion"]:
                self.conflicts += 1
                return 409, status(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on leases.coordination.k8s.io "{name}": '
                    "the object has been modified; please apply your changes to the latest "
                    "version and try again",
                )
            lease = self._stored(ns, name, body, current["metadata"])
            self.leases[(ns, name)] = lease
            self.writes += 1
            return 200, lease

    def _stored(
        self, ns: str, name: str, body: dict[str, Any], old_meta: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        meta = {
            "name": name,
            "namespace": ns,
            "uid": (old_meta or {}).get("uid", f"uid-{ns}-{name}"),
            "creationTimestamp": (old_meta or {}).get("creationTimestamp", "2026-01-01T00:00:00Z"),
            "resourceVersion": self._next_version(),
        }
        return {
            "kind": "Lease",
            "apiVersion": "coordination.k8s.io/v1",
            "metadata": meta,
            "spec": body.get("spec", {}),
        }


class KubeApiServer(BackgroundHttpServer[ThreadingHTTPServer]):
    """The fake API server on a free loopback port."""

    def __init__(self) -> None:
        self.store = LeaseStore()
        self.port = free_port()
        store = self.store

        class Handler(JsonRequestHandler):
            def _route(self, method: str) -> None:
                if store.down.is_set():
                    self.reply_json(503, status(503, "ServiceUnavailable", "etcd is down"))
                    return
                match = LEASE_PATH.match(self.path)
                if match is None:
                    self.reply_json(404, status(404, "NotFound", "the server could not find it"))
                    return
                ns, name = match["ns"], match["name"]
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else {}
                if method == "GET" and name:
                    self.reply_json(*store.get(ns, name))
                elif method == "POST" and not name:
                    self.reply_json(*store.create(ns, body))
                elif method == "PUT" and name:
                    if store.before_replace is not None:
                        store.before_replace()
                    self.reply_json(*store.replace(ns, name, body))
                else:
                    self.reply_json(405, status(405, "MethodNotAllowed", method))

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_PUT(self) -> None:
                self._route("PUT")

        super().__init__(ThreadingHTTPServer(("127.0.0.1", self.port), Handler))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kubeconfig(self) -> str:
        """A kubeconfig (YAML is a superset of JSON) pointing at this server."""
        return json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "local", "cluster": {"server": self.url}}],
                "users": [{"name": "tester", "user": {"token": "test-token"}}],
                "contexts": [
                    {
                        "name": "local",
                        "context": {"cluster": "local", "user": "tester", "namespace": "boxoffice"},
                    }
                ],
                "current-context": "local",
            }
        )
