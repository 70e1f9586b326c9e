"""`boxoffice_db.aio.execute`: a statement runs on a cursor its connection keeps for it.

Real PostgreSQL, through the API's own pool (`make_async_pool`, prepared statements on, so a
statement run often is prepared on the server as in production). What a kept cursor must not
change: every execution's rows are its own, whatever the parameters' Python types do from one
run to the next (a phone number given, then not; a label list of another length; JSON of
another shape; non-ASCII text), and the connection's cursor factory (traced cursors) and row
factory still apply. What it is for: the same query object on the same connection runs on
the same cursor, whose adapters psycopg then keeps.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from boxoffice_db.aio import AsyncConn, execute, make_async_pool
from psycopg import AsyncCursor
from psycopg.types.json import Jsonb

from tests.support.stack import Stack

pytestmark = pytest.mark.integration

ECHO = (
    "SELECT %(id)s::uuid AS id, %(labels)s::text[] AS labels, %(phone)s::text AS phone,"
    " %(headers)s::jsonb AS headers, %(n)s::int AS n, %(body)s::bytea AS body"
)
OTHER = "SELECT %(id)s::uuid AS id"


class MarkedCursor(AsyncCursor[Any]):
    """A cursor factory of the connection's own, as `trace_async_connection` installs one."""


def test_a_kept_cursor_answers_each_execution_with_its_own_rows(stack: Stack) -> None:
    runs: list[dict[str, Any]] = [
        {"labels": ["A1"], "phone": None, "headers": {}, "n": 1, "body": b""},
        {
            "labels": ["A1", "B12"],
            "phone": "+44 7700 900123",
            "headers": {"a": "b"},
            "n": 2,
            "body": b"\x00\xff",
        },
        {"labels": [], "phone": "", "headers": {"ünï": ["cödé", 1]}, "n": 0, "body": b"x" * 5000},
        {
            "labels": ["Réihe 1 · Platz 7", "席12"],
            "phone": None,
            "headers": {"k": None},
            "n": -7,
            "body": b"{}",
        },
    ]

    async def run() -> None:
        pool = make_async_pool(stack.database_url, "kept-cursors-test", max_size=1)
        await pool.open()
        try:
            async with pool.connection() as conn:
                conn.cursor_factory = MarkedCursor
                cursors = []
                # Each shape twice over, more than psycopg's threshold for preparing a statement.
                for values in runs * 3:
                    params = {"id": uuid.uuid4(), **values, "headers": Jsonb(values["headers"])}
                    cursor = await execute(conn, ECHO, params)
                    row = await cursor.fetchone()
                    assert row is not None
                    assert row.id == params["id"]
                    assert row.labels == values["labels"]
                    assert row.phone == values["phone"]
                    assert row.headers == values["headers"]
                    assert row.n == values["n"]
                    assert row.body == values["body"]
                    assert await cursor.fetchone() is None
                    cursors.append(cursor)
                # One cursor for the query on this connection, of the connection's factory.
                assert all(cursor is cursors[0] for cursor in cursors)
                assert isinstance(cursors[0], MarkedCursor)
                # Another query has a cursor of its own; the first keeps answering rightly.
                other_id = uuid.uuid4()
                other = await execute(conn, OTHER, {"id": other_id})
                assert other is not cursors[0]
                assert (await other.fetchall())[0].id == other_id
                again = await execute(conn, ECHO, {"id": other_id, **runs[0], "headers": None})
                assert again is cursors[0]
                row = await again.fetchone()
                assert row is not None
                assert (row.id, row.headers) == (other_id, None)
        finally:
            await pool.close()

    asyncio.run(run())


def test_each_connection_keeps_its_own_cursors_and_errors_leave_them_usable(
    stack: Stack,
) -> None:
    async def run() -> None:
        pool = make_async_pool(stack.database_url, "kept-cursors-test", max_size=2)
        await pool.open()
        try:

            async def on(conn: AsyncConn, value: int) -> AsyncCursor[Any]:
                cursor = await execute(conn, "SELECT 10 / %(d)s::int AS q", {"d": value})
                return cursor

            async with pool.connection() as first, pool.connection() as second:
                a, b = await asyncio.gather(on(first, 2), on(second, 5))
                assert a is not b
                assert (await a.fetchall())[0].q == 5
                assert (await b.fetchall())[0].q == 2
                # A statement that fails leaves the kept cursor (and connection) usable.
                with pytest.raises(Exception, match="division by zero"):
                    await on(first, 0)
                again = await on(first, 10)
                assert again is a
                assert (await again.fetchall())[0].q == 1
        finally:
            await pool.close()

    asyncio.run(run())
