"""A local HTTP server that speaks the Razorpay REST API, started by the tests.

It keeps orders, payments and refunds in memory, checks basic auth, and can play the
customer (`pay`) and Razorpay's webhook sender (`webhook_body`, signed like Razorpay).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

from boxoffice_devstack.json_http import BackgroundHttpServer, JsonRequestHandler
from boxoffice_devstack.servers import free_port

KEY_ID = "rzp_test_boxoffice"
# Refund faults: a 500 with nothing done, or the refund made and then a 500 (its answer lost).
REFUSED = "refused"
ANSWER_LOST = "answer_lost"
KEY_SECRET = "rzp-secret-" + "s" * 20
WEBHOOK_SECRET = "rzp-webhook-" + "w" * 20


@dataclass
class RazorpayState:
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    # payment id -> the fault its first refund call meets (REFUSED or ANSWER_LOST)
    refund_faults: dict[str, str] = field(default_factory=dict)
    # (payment id, fault) for every fault that fired
    refund_faults_fired: list[tuple[str, str]] = field(default_factory=list)
    # payment id -> a barrier its refund lookups wait at once they have read the refunds, so
    # concurrent callers all look before any of them creates one (a race's interleaving, made
    # certain)
    refund_lookup_gates: dict[str, threading.Barrier] = field(default_factory=dict)
    # X-Refund-Idempotency key -> the refund created with it
    refunds_by_idempotency_key: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:14]}"


class _Handler(JsonRequestHandler):
    server: _Server

    def _error(self, status: int, description: str) -> None:
        self.reply_json(
            status, {"error": {"code": "BAD_REQUEST_ERROR", "description": description}}
        )

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
            return self.reply_json(
                200, {"entity": "collection", "count": len(items), "items": items}
            )
        if m := re.fullmatch(r"/v1/payments/([\w]+)/refunds", self.path):
            with state.lock:
                gate = state.refund_lookup_gates.get(m[1])
                items = [r for r in state.refunds.values() if r["payment_id"] == m[1]]
            if gate is not None:
                # Every gated lookup has read the refunds before any of them is answered.
                # Fewer callers than expected: the barrier breaks and each is answered anyway.
                with contextlib.suppress(threading.BrokenBarrierError):
                    gate.wait(timeout=5)
            return self.reply_json(
                200, {"entity": "collection", "count": len(items), "items": items}
            )
        if m := re.fullmatch(r"/v1/orders/([\w]+)", self.path):
            order = state.orders.get(m[1])
            return self.reply_json(200, order) if order else self._error(404, "no such order")
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
            return self.reply_json(200, order)
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
                return self.reply_json(200, dict(payment))
        if m := re.fullmatch(r"/v1/payments/([\w]+)/refund", self.path):
            key = self.headers.get("X-Refund-Idempotency")
            with state.lock:
                # Razorpay's idempotent refund: the same key answers with the same refund.
                if key and (earlier := state.refunds_by_idempotency_key.get(key)) is not None:
                    if earlier["payment_id"] != m[1] or earlier["amount"] != body.get("amount"):
                        return self._error(
                            400,
                            "Different request with the same idempotency key has already "
                            "been processed.",
                        )
                    return self.reply_json(200, earlier)
                payment = state.payments.get(m[1])
                if payment is None or payment["status"] != "captured":
                    return self._error(400, "The payment has not been captured")
                fault = state.refund_faults.pop(m[1], None)
                if fault is not None:
                    state.refund_faults_fired.append((m[1], fault))
                if fault == REFUSED:
                    return self._error(500, "simulated refund outage")
                refund = {
                    "id": _new_id("rfnd"),
                    "entity": "refund",
                    "payment_id": m[1],
                    "amount": body.get("amount", payment["amount"]),
                    "receipt": body.get("receipt"),
                    "status": "processed",
                }
                payment["status"] = "refunded"
                state.refunds[refund["id"]] = refund
                if key:
                    state.refunds_by_idempotency_key[key] = refund
                if fault == ANSWER_LOST:
                    return self._error(500, "simulated outage after the refund was made")
                return self.reply_json(200, refund)
        return self._error(404, "no such route")


class _Server(ThreadingHTTPServer):
    state: RazorpayState
    fail_next: int


class FakeRazorpay(BackgroundHttpServer[_Server]):
    """Start with `.start()`; `base_url` is what RazorpayProvider's `base_url` takes."""

    def __init__(self) -> None:
        self.port = free_port()
        super().__init__(_Server(("127.0.0.1", self.port), _Handler))
        self.server.state = RazorpayState()
        self.server.fail_next = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def state(self) -> RazorpayState:
        return self.server.state

    def fail_next_posts(self, count: int) -> None:
        self.server.fail_next = count

    def fail_first_refund(self, payment_id: str, fault: str = REFUSED) -> None:
        """The first refund call for `payment_id` fails with a 500 (REFUSED: nothing refunded;
        ANSWER_LOST: refunded, then the 500)."""
        with self.state.lock:
            self.state.refund_faults[payment_id] = fault

    def gate_refund_lookups(self, payment_id: str, callers: int) -> None:
        """Refund lookups for `payment_id` are answered only once `callers` of them wait."""
        with self.state.lock:
            self.state.refund_lookup_gates[payment_id] = threading.Barrier(callers)

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
