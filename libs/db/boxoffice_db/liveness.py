"""Is a pooled connection still alive? Looked at without a round trip.

Between statements the server says nothing unless asked (these connections do not LISTEN).
When it closes a connection (a restart, a fail-over, `pg_terminate_backend`, PgBouncer going
away), its last words (a FATAL message) or the end of the stream wait on the socket. So a
checkout looks at the socket with one `poll`, which does not wait: nothing there, the
connection is handed out as it is; something there, it gets the usual round-trip check, and
is replaced if that fails. A round trip on every checkout cost a hold about a tenth of its
API CPU (issue 18). What neither can see without a timeout is a server gone without a word
(a partition): the statement's own error answers that, as it did before.
"""

from __future__ import annotations

import select
from typing import Any

from psycopg import OperationalError
from psycopg.pq import ConnStatus
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import ConnectionPoolEntry

_READABLE = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP


def server_spoke(fd: int) -> bool:
    """Whether anything (data, end of stream, an error) waits on socket `fd`; never waits."""
    poller = select.poll()
    poller.register(fd, _READABLE)
    return bool(poller.poll(0))


def _looks_alive(conn: Any) -> bool | None:
    """False: certainly broken; True: nothing waits on it; None: ask the server."""
    if conn.closed or conn.broken or conn.pgconn.status != ConnStatus.OK:
        return False
    return None if server_spoke(conn.pgconn.socket) else True


async def check_async_connection(conn: Any) -> None:
    """`AsyncConnectionPool`'s `check`: a round trip only if the server has spoken."""
    alive = _looks_alive(conn)
    if alive is False:
        raise OperationalError("the connection is closed")
    if alive is None:
        await AsyncConnectionPool.check_connection(conn)


def check_on_checkout(engine: Engine) -> None:
    """`engine`'s pool checks each connection it hands out the same way (instead of
    `pool_pre_ping`, which pings every time); a broken one is replaced (up to 3 tries)."""

    @event.listens_for(engine, "checkout")
    def _check(dbapi_conn: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
        alive = _looks_alive(dbapi_conn)
        if alive is None:
            try:
                alive = engine.dialect.do_ping(dbapi_conn)
            except Exception:
                alive = False
        if not alive:
            raise DisconnectionError("the connection was closed by the server")
