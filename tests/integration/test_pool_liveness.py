"""Pooled connections are checked for life without a round trip (boxoffice_db.liveness).

Real PostgreSQL. A connection the server closed while it sat in the pool is never handed out
(it is replaced); one the server left alone is handed out without a statement, which the
server's own view of it (`pg_stat_activity.state_change`) shows.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import psycopg
import pytest
from boxoffice_db.aio import libpq_url, make_async_pool
from boxoffice_db.engine import make_engine
from boxoffice_db.liveness import server_spoke
from sqlalchemy import text

from tests.support.stack import Stack

pytestmark = pytest.mark.integration


def last_state_change(url: str, pid: int) -> datetime:
    with psycopg.connect(libpq_url(url), autocommit=True) as admin:
        row = admin.execute(
            "SELECT state_change FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()
        assert row is not None
        return row[0]  # type: ignore[no-any-return]


def terminate(url: str, pid: int) -> None:
    with psycopg.connect(libpq_url(url), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def wait_for_words(fd: int) -> None:
    deadline = time.monotonic() + 10
    while not server_spoke(fd):
        assert time.monotonic() < deadline, "the server never closed the connection"
        time.sleep(0.01)


def test_the_asyncio_pool_hands_out_a_live_connection_without_a_round_trip(stack: Stack) -> None:
    url = stack.database_url

    async def run() -> None:
        pool = make_async_pool(url, "liveness-test-ñ", max_size=1)
        await pool.open()
        try:
            async with pool.connection() as conn:
                pid = conn.info.backend_pid
                await conn.execute("SELECT 1")
            changed = last_state_change(url, pid)
            async with pool.connection() as conn:
                assert conn.info.backend_pid == pid
                # Handed out without a statement: the server saw nothing since.
                assert last_state_change(url, pid) == changed
            terminate(url, pid)
            wait_for_words(conn.pgconn.socket)
            async with pool.connection() as conn:
                assert conn.info.backend_pid != pid
                row = await (await conn.execute("SELECT 'ünïcode'")).fetchone()
                assert row is not None
                assert row[0] == "ünïcode"
        finally:
            await pool.close()

    asyncio.run(run())


def test_the_engine_replaces_a_connection_the_server_closed(stack: Stack) -> None:
    url = stack.database_url
    engine = make_engine(url, "liveness-test-sync", pool_size=1)
    try:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            raw = conn.connection.dbapi_connection
            assert raw is not None
            fd = raw.fileno()
        changed = last_state_change(url, pid)
        with engine.connect() as conn:
            assert conn.connection.dbapi_connection is raw
            assert last_state_change(url, pid) == changed
        terminate(url, pid)
        wait_for_words(fd)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        engine.dispose()
