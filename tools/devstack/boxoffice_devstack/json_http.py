"""Small local HTTP servers that answer JSON: the SMS sink and the test doubles of third parties."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Self, TypeVar

ServerT = TypeVar("ServerT", bound=ThreadingHTTPServer)


class JsonRequestHandler(BaseHTTPRequestHandler):
    """Answers with JSON bodies and keeps its access log off stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def reply_json(self, status: int, body: object) -> None:
        """Send `body` as the whole JSON response with `status`."""
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class BackgroundHttpServer(Generic[ServerT]):
    """`server` answering from a daemon thread once `start()`ed, until `stop()`."""

    def __init__(self, server: ServerT, poll_interval: float = 0.5) -> None:
        self.server = server
        self.thread = threading.Thread(
            target=server.serve_forever, args=(poll_interval,), daemon=True
        )

    def start(self) -> Self:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
