"""A real HTTP proxy in front of the live API that injects the faults a network has.

Faults apply, in order, to the next requests that reach the proxy:

- `DropResponse()`: forward the request, let the API act on it, then close the connection
  without answering (the client sees a response cut off, not knowing the outcome);
- `Answer(status, retry_after)`: answer with that problem+json status without forwarding
  (an overloaded gateway or a restarting API).

Every request is recorded, with its method, path and Idempotency-Key.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
from boxoffice_devstack.json_http import BackgroundHttpServer

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass(frozen=True)
class DropResponse:
    pass


@dataclass(frozen=True)
class Answer:
    status: int
    retry_after: str | None = None


Fault = DropResponse | Answer


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    idempotency_key: str | None
    fault: Fault | None


class FaultyProxy(BackgroundHttpServer[ThreadingHTTPServer]):
    def __init__(self, upstream: str) -> None:
        self.upstream = httpx.Client(base_url=upstream, timeout=30)
        self.faults: deque[Fault] = deque()
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with proxy.lock:
                    fault = proxy.faults.popleft() if proxy.faults else None
                    proxy.seen.append(
                        Seen(self.command, self.path, self.headers.get("idempotency-key"), fault)
                    )
                if isinstance(fault, Answer):
                    self._answer_problem(fault)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                response = proxy.upstream.request(
                    self.command, self.path, content=body, headers=headers
                )
                if isinstance(fault, DropResponse):
                    self.close_connection = True
                    return
                self.send_response(response.status_code)
                for name, value in response.headers.items():
                    if name.lower() not in HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.content)))
                self.end_headers()
                self.wfile.write(response.content)

            def _answer_problem(self, fault: Answer) -> None:
                body = json.dumps(
                    {
                        "type": "https://boxoffice.dev/problems/service-unavailable",
                        "title": "Injected by the test proxy",
                        "status": fault.status,
                        "detail": "A fault injected between client and API.",
                        "instance": self.path,
                    }
                ).encode()
                self.send_response(fault.status)
                self.send_header("Content-Type", "application/problem+json")
                if fault.retry_after is not None:
                    self.send_header("Retry-After", fault.retry_after)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _handle  # noqa: N815

        super().__init__(ThreadingHTTPServer(("127.0.0.1", 0), Handler), poll_interval=0.05)
        self.server.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        super().stop()
        self.upstream.close()

    def inject(self, *faults: Fault) -> None:
        with self.lock:
            self.faults.extend(faults)

    def requests_to(self, method: str, path_prefix: str) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.method == method and s.path.startswith(path_prefix)]
