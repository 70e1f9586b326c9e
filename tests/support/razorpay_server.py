"""A local HTTP server that speaks the Razorpay REST API, started by the tests.

It keeps orders, payments and refunds in memory, checks basic auth, and can play the
customer (`pay`) and Razorpay's webhook sender (`webhook_body`, signed like Razorpay).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from boxoffice_devstack.servers import free_port

KEY_ID = "rzp_test_boxoffice"
KEY_SECRET = "rzp-secret-" + "s" * 20
WEBHOOK_SECRET = "rzp-webhook-" + "w" * 20


@dataclass
class RazorpayState:
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:14]}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, description: str) -> None:
        self._reply(status, {"error": {"code": "BAD_REQUEST_ERROR", "description": description}})

    def _authorized(self) -> bool:
        expected = "Basic " + base64.b64encode(f"{KEY_ID}:{KEY_SECRET}".encode()).decode()
        return hmac.compare_digest(self.headers.get("Authorization", ""), expected)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        data = json.loads(self.rfile.read(length) or b"{}")
        return data if isinstance(data, dict) else {}

    def do_GET(self) -> None:
        state = self.server.state
        with state.lock:
            state.requests.append(("GET", self.path))
        if not self._authorized():
            return self._error(401, "Authentication failed")
        if m := re.fullmatch(r"/v1/orders/([\w]+)/payments", self.path):
            with state.lock:
                items = [p for p in state.payments.values() if p["order_id"] == m[1]]
            return self._reply(200, {"entity": "collection", "count": len(items), "items": items})
        if m := re.fullmatch(r"/v1/orders/([\w]+)", self.path):
            order = state.orders.get(m[1])
            return self._reply(200, order) if order else self._error(404, "no such order")
        return self._error(404, "no such route")

    def do_POST(self) -> None:
        state = self.server.state
        with state.lock:
            state.requests.append(("POST", self.path))
        if self.server.fail_next:
            self.server.fail_next -= 1
            return self._error(500, "simulated outage")
        if not self._authorized():
            return self._error(401, "Authentication failed")
        body = self._body()
        if self.path == "/v1/orders":
            amount = body.get("amount")
            if not isinstance(amount, int) or amount < 100:
                return self._error(400, "The amount must be atleast INR 1.00")
            order = {
                "id": _new_id("order"),
                "entity": "order",
                "amount": amount,
                "amount_paid": 0,
                "currency": body.get("currency", "INR"),
                "receipt": body.get("receipt"),
                "status": "created",
            }
            with state.lock:
                state.orders[order["id"]] = order
            return self._reply(200, order)
        if m := re.fullmatch(r"/v1/payments/([\w]+)/capture", self.path):
            with state.lock:
                payment = state.payments.get(m[1])
                if payment is None:
                    return self._error(400, "The id provided does not exist")
                if payment["status"] != "authorized" or body.get("amount") != payment["amount"]:
                    return self._error(400, "This payment has already been captured")
                payment["status"] = "captured"
                payment["captured"] = True
                state.orders[payment["order_id"]]["status"] = "paid"
                return self._reply(200, dict(payment))
        if m := re.fullmatch(r"/v1/payments/([\w]+)/refund", self.path):
            with state.lock:
                payment = state.payments.get(m[1])
                if payment is None or payment["status"] != "captured":
                    return self._error(400, "The payment has not been captured")
                refund = {
                    "id": _new_id("rfnd"),
                    "entity": "refund",
                    "payment_id": m[1],
                    "amount": body.get("amount", payment["amount"]),
                    "status": "processed",
                }
                payment["status"] = "refunded"
                state.refunds[refund["id"]] = refund
                return self._reply(200, refund)
        return self._error(404, "no such route")


class _Server(ThreadingHTTPServer):
    state: RazorpayState
    fail_next: int


class FakeRazorpay:
    """Start with `.start()`; `base_url` is what RazorpayProvider's `base_url` takes."""

    def __init__(self) -> None:
        self.port = free_port()
        self._server = _Server(("127.0.0.1", self.port), _Handler)
        self._server.state = RazorpayState()
        self._server.fail_next = 0
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def state(self) -> RazorpayState:
        return self._server.state

    def fail_next_posts(self, count: int) -> None:
        self._server.fail_next = count

    def start(self) -> FakeRazorpay:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def pay(self, order_id: str, *, captured: bool = False, failed: bool = False) -> dict[str, Any]:
        """The customer pays an order in Checkout: an authorized (or captured/failed) payment."""
        with self.state.lock:
            order = self.state.orders[order_id]
            status = "failed" if failed else "captured" if captured else "authorized"
            payment = {
                "id": _new_id("pay"),
                "entity": "payment",
                "amount": order["amount"],
                "currency": order["currency"],
                "status": status,
                "order_id": order_id,
                "captured": captured,
            }
            self.state.payments[payment["id"]] = payment
            order["status"] = "paid" if captured else "attempted"
            return dict(payment)

    @staticmethod
    def webhook(event: str, payment: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        """A webhook body and its headers, signed with the webhook secret like Razorpay's."""
        body = json.dumps(
            {
                "entity": "event",
                "account_id": "acc_boxoffice",
                "event": event,
                "contains": ["payment"],
                "payload": {"payment": {"entity": payment}},
                "created_at": 1700000000,
            }
        ).encode()
        signature = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        return body, {
            "Content-Type": "application/json",
            "X-Razorpay-Signature": signature,
            "X-Razorpay-Event-Id": _new_id("evt"),
        }
