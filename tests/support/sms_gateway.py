"""A real local HTTP server speaking a Twilio-style SMS API: form POST of To, From, Body."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from boxoffice_devstack.servers import free_port

ACCOUNT = "AC" + "0" * 32
TOKEN = "sms-test-token"


@dataclass(frozen=True)
class SmsRequest:
    to: str
    sender: str
    body: str
    idempotency_key: str | None
    authorization: str | None


class SmsGatewayServer:
    """Accepts messages with `201 {"sid": ...}`; `fail_next` makes it answer otherwise."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[SmsRequest] = []
        self.failures: list[int] = []
        self.rejected = 0
        self.lock = threading.Lock()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                expected = "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    return self._reply(401, {"message": "Authenticate"})
                if self.path != f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json":
                    return self._reply(404, {"message": "not found"})
                with gateway.lock:
                    if gateway.failures:
                        gateway.rejected += 1
                        return self._reply(gateway.failures.pop(0), {"message": "failing"})
                    gateway.received.append(
                        SmsRequest(
                            to=form["To"][0],
                            sender=form["From"][0],
                            body=form["Body"][0],
                            idempotency_key=self.headers.get("Idempotency-Key"),
                            authorization=self.headers.get("Authorization"),
                        )
                    )
                self._reply(201, {"sid": "SM" + uuid.uuid4().hex, "status": "queued"})

            def _reply(self, status: int, body: dict[str, str]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/2010-04-01/Accounts/{ACCOUNT}/Messages.json"

    def env(self) -> dict[str, str]:
        """The notifier settings that point at this gateway."""
        return {
            "BOXOFFICE_SMS_GATEWAY_URL": self.url,
            "BOXOFFICE_SMS_GATEWAY_ACCOUNT": ACCOUNT,
            "BOXOFFICE_SMS_GATEWAY_TOKEN": TOKEN,
        }

    def start(self) -> SmsGatewayServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail_next(self, *statuses: int) -> None:
        with self.lock:
            self.failures.extend(statuses)

    def messages(self) -> list[SmsRequest]:
        with self.lock:
            return list(self.received)
