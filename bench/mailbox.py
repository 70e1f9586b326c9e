"""A real SMTP server (aiosmtpd) that notes when each email arrived and what it mentions."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from aiosmtpd.controller import Controller
from boxoffice_devstack.servers import free_port

# Booking references are short upper-case codes; an email "is about" every such token in it,
# so matching survives changes to the templates, subjects and headers.
TOKEN = re.compile(rb"\b[A-Z0-9]{6,16}\b")


class TimestampingHandler:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.arrivals: list[tuple[float, frozenset[str]]] = []  # (wall clock, tokens)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd hook
        arrived = time.time()
        content: bytes = envelope.content[:16384]
        tokens = frozenset(t.decode() for t in TOKEN.findall(content))
        with self.lock:
            self.arrivals.append((arrived, tokens))
        return "250 OK"


class Mailbox:
    """The SMTP server the notifier sends to, in this process (same clock as the load)."""

    def __init__(self) -> None:
        self.handler = TimestampingHandler()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    def start(self) -> Mailbox:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def count(self) -> int:
        with self.handler.lock:
            return len(self.handler.arrivals)

    def first_arrivals(self, references: set[str]) -> dict[str, float]:
        """Reference -> when the first email mentioning it arrived (for those that did)."""
        with self.handler.lock:
            arrivals = list(self.handler.arrivals)
        first: dict[str, float] = {}
        for arrived, tokens in arrivals:
            for reference in tokens & references:
                first.setdefault(reference, arrived)
        return first
