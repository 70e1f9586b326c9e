"""A real SMTP server (aiosmtpd) that notes when each email arrived, by booking reference."""

from __future__ import annotations

import threading
import time
from email.parser import BytesHeaderParser
from typing import Any

from aiosmtpd.controller import Controller
from boxoffice_devstack.servers import free_port


class TimestampingHandler:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        # (arrival wall-clock time, Subject, X-Boxoffice-Booking reference)
        self.arrivals: list[tuple[float, str, str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd hook
        arrived = time.time()
        headers = BytesHeaderParser().parsebytes(envelope.content)
        with self.lock:
            self.arrivals.append(
                (arrived, str(headers["Subject"] or ""), str(headers["X-Boxoffice-Booking"] or ""))
            )
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

    def arrivals(self) -> list[tuple[float, str, str]]:
        with self.handler.lock:
            return list(self.handler.arrivals)

    def confirmations(self) -> dict[str, float]:
        """Booking reference -> when its first confirmation email arrived."""
        first: dict[str, float] = {}
        for arrived, subject, reference in self.arrivals():
            if "confirmed" in subject.lower() and reference not in first:
                first[reference] = arrived
        return first
