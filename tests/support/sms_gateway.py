"""A real local HTTP server speaking a Twilio-style SMS API: form POST of To, From, Body."""

from __future__ import annotations

import base64
import threading
import uuid
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs

from boxoffice_devstack.json_http import BackgroundHttpServer, JsonRequestHandler
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


class SmsGatewayServer(BackgroundHttpServer[ThreadingHTTPServer]):
    """Accepts messages with `201 {"sid": ...}`; `fail_next` makes it answer otherwise."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[SmsRequest] = []
        self.failures: list[int] = []
        self.rejected = 0
        self.lock = threading.Lock()
        gateway = self

        class Handler(JsonRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                expected = "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    return self.reply_json(401, {"message": "Authenticate"})
                if self.path != f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json":
                    return self.reply_json(404, {"message": "not found"})
                with gateway.lock:
                    if gateway.failures:
                        gateway.rejected += 1
                        return self.reply_json(gateway.failures.pop(0), {"message": "failing"})
                    gateway.received.append(
                        SmsRequest(
                            to=form["To"][0],
                            sender=form["From"][0],
                            body=form["Body"][0],
                            idempotency_key=self.headers.get("Idempotency-Key"),
                            authorization=self.headers.get("Authorization"),
                        )
                    )
                self.reply_json(201, {"sid": "SM" + uuid.uuid4().hex, "status": "queued"})

        super().__init__(ThreadingHTTPServer(("127.0.0.1", self.port), Handler))

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

    def fail_next(self, *statuses: int) -> None:
        with self.lock:
            self.failures.extend(statuses)

    def messages(self) -> list[SmsRequest]:
        with self.lock:
            return list(self.received)
