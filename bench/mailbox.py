"""A real SMTP server (aiosmtpd) that notes when each email arrived and what it mentions.

It runs in a process of its own: in the bench's process its thread took the GIL from the load
generator's event loop for every SMTP command (and the other way round), so the email arrival
times and the HTTP answers' latencies each waited on the other's work. Both processes read the
same wall clock.
"""

from __future__ import annotations

import asyncio
import gc
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
# BENCH_SMTP_RTT_MS: the network's round trip to the relay. The notifier then reaches the
# server through a proxy that holds every chunk, each way, for half of it, so each reply it
# waits for costs one round trip (0: no proxy, as next door).
RTT_ENV = "BENCH_SMTP_RTT_MS"


class TimestampingHandler(OffersPipelining):
    def __init__(self, delay_seconds: float = 0.0, pipelining: bool = True) -> None:
        self.offer_pipelining = pipelining
        self.lock = threading.Lock()
        # (wall clock, tokens): tuples of floats and strings, which Python's collector stops
        # tracking, so the thousands kept add nothing to its full collections.
        self.arrivals: list[tuple[float, tuple[str, ...]]] = []
        self.delay_seconds = delay_seconds

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd hook
        arrived = time.time()
        content: bytes = envelope.content[:16384]
        tokens = tuple({t.decode() for t in TOKEN.findall(content)})
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
            for reference in references.intersection(tokens):
                first.setdefault(reference, arrived)
        return first


def _serve(
    port: int, requests: Connection, delay_seconds: float, pipelining: bool, rtt_seconds: float
) -> None:
    """The server process: the SMTP server (behind a delaying proxy if `rtt_seconds`), and the
    parent's questions answered over a pipe until it says stop (or goes away)."""
    handler = TimestampingHandler(delay_seconds, pipelining)
    proxy = _DelayingProxy(port, free_port(), rtt_seconds / 2) if rtt_seconds else None
    controller = Controller(handler, hostname="127.0.0.1", port=proxy.target if proxy else port)
    controller.start()
    if proxy:
        proxy.start()
    # Its startup heap out of Python's full collections, as the services' (boxoffice_telemetry
    # .heap): one of them stopped the server for 63 ms in scenario 4's steady phase.
    gc.collect()
    gc.freeze()
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
        if proxy:
            proxy.stop()
        controller.stop()


class _DelayingProxy:
    """A TCP proxy on `port` to `target` that delivers each chunk `delay` seconds after it
    read it, in order, both ways: a link with a round trip of twice `delay`."""

    def __init__(self, port: int, target: int, delay: float) -> None:
        self.port, self.target, self.delay = port, target, delay
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._link, "127.0.0.1", self.port), self._loop
        ).result(START_TIMEOUT)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(STOP_TIMEOUT)

    async def _link(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        try:
            server_in, server_out = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            client_out.close()
            return
        await asyncio.gather(
            self._carry(client_in, server_out),
            self._carry(server_in, client_out),
            return_exceptions=True,
        )

    async def _carry(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        in_flight: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, chunk = await in_flight.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                if not chunk:
                    break
                sink.write(chunk)
                await sink.drain()

        delivering = asyncio.create_task(deliver())
        try:
            while chunk := await source.read(65536):
                in_flight.put_nowait((loop.time() + self.delay, chunk))
        finally:
            in_flight.put_nowait((loop.time() + self.delay, b""))  # the end, after the rest
            with suppress(OSError):
                await delivering
            sink.close()


class Mailbox:
    """The SMTP server the notifier sends to, in a process of its own started by this one."""

    def __init__(
        self,
        delay_seconds: float | None = None,
        pipelining: bool | None = None,
        rtt_seconds: float | None = None,
    ) -> None:
        self.port = free_port()
        if delay_seconds is None:
            delay_seconds = float(os.environ.get(DELAY_ENV) or 0) / 1000
        if rtt_seconds is None:
            rtt_seconds = float(os.environ.get(RTT_ENV) or 0) / 1000
        if pipelining is None:
            pipelining = os.environ.get(PIPELINING_ENV, "1") != "0"
        context = multiprocessing.get_context("spawn")
        self._requests, child = context.Pipe()
        self._lock = threading.Lock()
        self._process = context.Process(
            target=_serve,
            args=(self.port, child, delay_seconds, pipelining, rtt_seconds),
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
