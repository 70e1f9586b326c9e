"""An asyncio connection pool (psycopg 3) for the API's hot paths.

The booking API's busiest requests (a hold, and the Idempotency-Key claim around every POST)
run on the event loop: a thread-pool job per database step costs more CPU than the SQL
itself, and threads waiting for pooled connections can starve each other. Everything else
uses the SQLAlchemy engine in `boxoffice_db.engine`. Connections are in autocommit mode: a
single statement is its own transaction (one round trip), and several are grouped with
`async with conn.transaction()`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import namedtuple_row
from psycopg_pool import AsyncConnectionPool

from boxoffice_db.liveness import check_async_connection

# Rows are named tuples (see `_configure`): typed as Any, read by attribute.
AsyncConn = AsyncConnection[Any]


def libpq_url(database_url: str) -> str:
    """The libpq form of a database URL that may name SQLAlchemy's psycopg driver."""
    for prefix in ("postgresql+psycopg://", "postgres+psycopg://"):
        if database_url.startswith(prefix):
            return "postgresql://" + database_url[len(prefix) :]
    return database_url


ConnectionHook = Callable[[AsyncConn], Awaitable[None]]

# The attribute of a connection that holds its kept cursors (see `execute`).
_KEPT = "_boxoffice_kept_cursors"


async def execute(
    conn: AsyncConn, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None
) -> AsyncCursor[Any]:
    """`conn.execute(query, params)`, on a cursor this connection keeps for `query`.

    psycopg keeps a cursor's adapters (each parameter's dumper, found by its Python type and
    built once) while the cursor runs the same query object again; `conn.execute` makes a new
    cursor every time, which finds and builds them all again: for a statement with a hold's
    dozen parameters, 140-145 µs of client CPU on a new cursor against 102-124 µs on a kept
    one on the bench machine. `query` is a module constant, the same object on every call.
    The cursor holds the statement's rows until this query runs again on the connection: read
    them before that, as every caller does at once. A pooled connection serves one request at
    a time, so no two statements share a cursor; the cursors go with their connection.
    """
    kept: dict[str, AsyncCursor[Any]] | None = getattr(conn, _KEPT, None)
    if kept is None:
        kept = {}
        setattr(conn, _KEPT, kept)
    cursor = kept.get(query)
    if cursor is None or cursor.closed:
        cursor = kept[query] = conn.cursor()
    return await cursor.execute(query, params)


def make_async_pool(
    database_url: str,
    application_name: str,
    max_size: int,
    prepared_statements: bool = True,
    configure: ConnectionHook | None = None,
) -> AsyncConnectionPool:
    """A pool to `open()` inside the event loop that uses it; connections name the service.

    Without `prepared_statements` (PgBouncer in transaction mode) nothing is prepared on the
    server, where the next statement may find another connection. `configure` runs on every
    new connection (the API passes `boxoffice_telemetry.pg_async.trace_async_connection`, so
    its statements are spans).
    """
    kwargs: dict[str, Any] = {
        "autocommit": True,
        "application_name": application_name,
        "connect_timeout": 5,
    }
    if not prepared_statements:
        kwargs["prepare_threshold"] = None

    async def _configure(conn: AsyncConn) -> None:
        conn.row_factory = namedtuple_row
        if configure is not None:
            await configure(conn)

    return AsyncConnectionPool(
        libpq_url(database_url),
        min_size=min(2, max_size),
        max_size=max_size,
        kwargs=kwargs,
        configure=_configure,
        # A pooled connection that a database restart broke is replaced before it is used.
        check=check_async_connection,
        timeout=10,
        name=f"{application_name}-async",
        open=False,
    )
