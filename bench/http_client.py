"""A small asyncio HTTP/1.1 client: cheap enough per request that the server is what we time."""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

REPLY_TIMEOUT = 60.0  # seconds; a request with no answer by then counts as failed (status 0)


@dataclass
class Reply:
    status: int
    body: bytes
    sent_at: float  # wall clock, when the request was written
    latency: float  # seconds from writing the request to reading the whole response

    def json(self) -> Any:
        return json.loads(self.body)


def encode_request(method: str, path: str, host: str, headers: dict[str, str], body: Any) -> bytes:
    payload = b"" if body is None else json.dumps(body).encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(payload)}"]
    if body is not None:
        lines.append("Content-Type: application/json")
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


async def read_reply(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("server closed the connection")
    status = int(status_line.split()[1])
    length, chunked = 0, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
        elif name.strip().lower() == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if not chunked:
        return status, await reader.readexactly(length)
    body = b""
    while True:
        size = int((await reader.readline()).split(b";")[0], 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return status, body
        body += chunk[:-2]


class Connection:
    """One keep-alive connection."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> Connection:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def send(self, raw: bytes) -> Reply:
        if self.writer is None or self.writer.is_closing():
            await self.open()
        assert self.reader is not None
        assert self.writer is not None
        sent_at, started = time.time(), time.perf_counter()
        try:
            self.writer.write(raw)
            await self.writer.drain()
            status, body = await asyncio.wait_for(read_reply(self.reader), REPLY_TIMEOUT)
        except (TimeoutError, OSError, ConnectionError, asyncio.IncompleteReadError) as exc:
            # No answer is a result too (status 0), never a hang: the connection is dropped.
            self.writer.close()
            return Reply(0, repr(exc).encode(), sent_at, time.perf_counter() - started)
        return Reply(status, body, sent_at, time.perf_counter() - started)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with suppress(OSError):
                await self.writer.wait_closed()


class Client:
    """A pool of keep-alive connections to one server, with the bench's API key."""

    def __init__(self, url: str, api_key: str, connections: int) -> None:
        self.url = url
        self.api_key = api_key
        self.size = connections
        self.idle: asyncio.Queue[Connection] = asyncio.Queue()
        self.all: list[Connection] = []

    async def __aenter__(self) -> Client:
        self.all = await asyncio.gather(*(Connection(self.url).open() for _ in range(self.size)))
        for connection in self.all:
            self.idle.put_nowait(connection)
        return self

    async def __aexit__(self, *_: object) -> None:
        await asyncio.gather(*(c.close() for c in self.all))

    def encode(self, method: str, path: str, body: Any = None, **headers: str) -> bytes:
        return encode_request(
            method,
            path,
            f"127.0.0.1:{self.all[0].port if self.all else 80}",
            {"Authorization": f"Bearer {self.api_key}", **headers},
            body,
        )

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        connection = await self.idle.get()
        try:
            yield connection
        except BaseException:
            # A connection in an unknown state is not reused.
            await connection.close()
            connection.writer = None
            raise
        finally:
            self.idle.put_nowait(connection)

    async def request(self, method: str, path: str, body: Any = None, **headers: str) -> Reply:
        raw = self.encode(method, path, body, **headers)
        async with self.connection() as connection:
            return await connection.send(raw)


async def burst(url: str, requests: Sequence[bytes]) -> list[Reply]:
    """Open one connection per request first, then send every request at the same moment."""
    connections = await asyncio.gather(*(Connection(url).open() for _ in requests))
    go = asyncio.Event()

    async def one(connection: Connection, raw: bytes) -> Reply:
        await go.wait()
        return await connection.send(raw)

    tasks = [asyncio.create_task(one(c, r)) for c, r in zip(connections, requests, strict=True)]
    await asyncio.sleep(0.05)  # every task is parked on the event
    go.set()
    try:
        return await asyncio.gather(*tasks)
    finally:
        await asyncio.gather(*(c.close() for c in connections))


async def paced(
    rate: float, count: int, make: Callable[[int], Coroutine[Any, Any, Reply]]
) -> list[Reply]:
    """Open loop: start request i at i / rate seconds, however slowly earlier ones answer.

    Python's collector is off meanwhile: a full collection of what the phase piles up (its
    tasks and replies) stopped the generator for 19-105 ms, a few times in scenario 4's 30 s,
    and the requests due meanwhile then went out at once. What it leaves is collected after.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        started = time.perf_counter()
        tasks: list[asyncio.Task[Reply]] = []
        for i in range(count):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(make(i)))
        return await asyncio.gather(*tasks)
    finally:
        if collecting:
            gc.enable()


async def closed_loop(
    concurrency: int, count: int, make: Callable[[int], Coroutine[Any, Any, Reply]]
) -> list[Reply]:
    """`concurrency` workers send `count` requests as fast as the server answers."""
    results: list[Reply | None] = [None] * count
    counter = iter(range(count))

    async def worker() -> None:
        for i in counter:
            results[i] = await make(i)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return [r for r in results if r is not None]
