"""A real SMTP server (aiosmtpd) that notes when each email arrived and what it mentions.

It runs in a process of its own: in the bench's process its thread took the GIL from the load
generator's event loop for every SMTP command (and the other way round), so the email arrival
times and the HTTP answers' latencies each waited on the other's work. Both processes read the
same wall clock.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
import threading
import time
from contextlib import suppress
from multiprocessing.connection import Connection
from typing import Any

from aiosmtpd.controller import Controller
from boxoffice_devstack.servers import free_port
from boxoffice_devstack.smtp_sink import OffersPipelining

# Booking references are short upper-case codes; an email "is about" every such token in it,
# so matching survives changes to the templates, subjects and headers.
TOKEN = re.compile(rb"\b[A-Z0-9]{6,16}\b")
START_TIMEOUT = 30.0  # seconds for the server process to start listening
STOP_TIMEOUT = 10.0


# BENCH_SMTP_DELAY_MS: how long the server waits before it accepts each email, to stand for a
# relay that far away (0: it answers at once, as a relay next door does).
DELAY_ENV = "BENCH_SMTP_DELAY_MS"
# BENCH_SMTP_PIPELINING=0: the server does not offer PIPELINING (RFC 2920), so the notifier
# waits for each reply of the envelope, as with a relay that does not offer it. By default it
# does, as Postfix and most relays do.
PIPELINING_ENV = "BENCH_SMTP_PIPELINING"


class TimestampingHandler(OffersPipelining):
    def __init__(self, delay_seconds: float = 0.0, pipelining: bool = True) -> None:
        self.offer_pipelining = pipelining
        self.lock = threading.Lock()
        self.arrivals: list[tuple[float, frozenset[str]]] = []  # (wall clock, tokens)
        self.delay_seconds = delay_seconds

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd hook
        arrived = time.time()
        content: bytes = envelope.content[:16384]
        tokens = frozenset(t.decode() for t in TOKEN.findall(content))
        with self.lock:
            self.arrivals.append((arrived, tokens))
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        return "250 OK"

    def count(self) -> int:
        with self.lock:
            return len(self.arrivals)

    def first_arrivals(self, references: set[str]) -> dict[str, float]:
        with self.lock:
            arrivals = list(self.arrivals)
        first: dict[str, float] = {}
        for arrived, tokens in arrivals:
            for reference in tokens & references:
                first.setdefault(reference, arrived)
        return first


def _serve(port: int, requests: Connection, delay_seconds: float, pipelining: bool) -> None:
    """The server process: the SMTP server, and the parent's questions answered over a pipe
    until it says stop (or goes away)."""
    handler = TimestampingHandler(delay_seconds, pipelining)
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        requests.send("ready")
        while True:
            try:
                request, argument = requests.recv()
            except EOFError:
                return
            if request == "count":
                requests.send(handler.count())
            elif request == "first_arrivals":
                requests.send(handler.first_arrivals(argument))
            else:
                requests.send(None)
                return
    finally:
        controller.stop()


class Mailbox:
    """The SMTP server the notifier sends to, in a process of its own started by this one."""

    def __init__(self, delay_seconds: float | None = None, pipelining: bool | None = None) -> None:
        self.port = free_port()
        if delay_seconds is None:
            delay_seconds = float(os.environ.get(DELAY_ENV) or 0) / 1000
        if pipelining is None:
            pipelining = os.environ.get(PIPELINING_ENV, "1") != "0"
        context = multiprocessing.get_context("spawn")
        self._requests, child = context.Pipe()
        self._lock = threading.Lock()
        self._process = context.Process(
            target=_serve,
            args=(self.port, child, delay_seconds, pipelining),
            name="bench-mailbox",
            daemon=True,
        )

    def start(self) -> Mailbox:
        self._process.start()
        if not self._requests.poll(START_TIMEOUT) or self._requests.recv() != "ready":
            self._process.kill()
            raise RuntimeError("the bench's SMTP server did not start")
        return self

    def stop(self) -> None:
        if self._process.is_alive():
            with suppress(OSError, EOFError):
                self._ask("stop")
            self._process.join(STOP_TIMEOUT)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
        self._requests.close()

    def _ask(self, request: str, argument: Any = None) -> Any:
        with self._lock:
            self._requests.send((request, argument))
            return self._requests.recv()

    def count(self) -> int:
        count: int = self._ask("count")
        return count

    def first_arrivals(self, references: set[str]) -> dict[str, float]:
        """Reference -> when the first email mentioning it arrived (for those that did)."""
        first: dict[str, float] = self._ask("first_arrivals", set(references))
        return first
