"""Core statements on a cursor the connection keeps for them: the synchronous twin of
`boxoffice_db.aio.execute`, for a worker's statements that run once per message.

SQLAlchemy's Core execution costs a small statement more client CPU than psycopg itself: the
statement's cache key is walked again on every call, then come an execution context, a Result
and its Rows; and a new psycopg cursor per statement finds and builds every parameter's dumper
again. The notifier's delivery (its claim with the booking's details, then its update: one
transaction per email) cost 500-590 µs of client CPU through `Connection.execute`, 420-480 µs
through `exec_driver_sql`, and 250-310 µs as here, measured in-process on the bench machine
(six rounds of 200 deliveries each way, interleaved).

A statement is still written with SQLAlchemy: `DriverStatement.of` compiles it once for
psycopg, with the values it carries itself (a literal status, `attempts + 1`) kept beside the
SQL. It runs inside `connection`'s transaction, on the same DBAPI connection, so the pool, the
checkout's liveness check, the transaction and its commit are SQLAlchemy's as before. A
failure is raised as SQLAlchemy raises it (`DBAPIError.instance`: an OperationalError stays
transient to the retry policy, an IntegrityError permanent), and a lost connection is
invalidated as SQLAlchemy would invalidate it. The cursor's class is psycopg's, or the one
`use_cursor_class` names for the engine (tracing's, so the statements are client spans).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement

_DIALECT = PGDialect_psycopg()  # type: ignore[no-untyped-call]
# The key in a pooled connection's `info` (it lives as long as the DBAPI connection) under
# which its kept cursors are found.
_KEPT = "boxoffice_kept_cursors"
_cursor_classes: weakref.WeakKeyDictionary[Engine, type[psycopg.Cursor[Any]]] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class DriverStatement:
    """A Core statement as psycopg runs it: its SQL, and the values it binds on its own."""

    sql: str
    constants: Mapping[str, Any]

    @classmethod
    def of(cls, statement: ClauseElement) -> DriverStatement:
        """Compile `statement` for psycopg. Its parameters are `bindparam`s by name, given at
        each `execute`; a column default computed in Python is refused (it would need
        SQLAlchemy's execution context): give the statement that value instead."""
        compiled: Any = statement.compile(dialect=_DIALECT)
        if compiled.insert_prefetch or compiled.update_prefetch:
            columns = [c.name for c in [*compiled.insert_prefetch, *compiled.update_prefetch]]
            raise ValueError(f"the statement leaves Python-side defaults to SQLAlchemy: {columns}")
        constants = {
            name: value
            for name, value in compiled.params.items()
            if not compiled.binds[name].required
        }
        return cls(compiled.string, constants)


def use_cursor_class(engine: Engine, cursor_class: type[psycopg.Cursor[Any]]) -> None:
    """Kept cursors on `engine`'s connections are `cursor_class` from now on (a traced one)."""
    _cursor_classes[engine] = cursor_class


def execute(
    connection: Connection, statement: DriverStatement, params: Mapping[str, Any]
) -> psycopg.Cursor[Any]:
    """Run `statement` with `params` in `connection`'s transaction, on a cursor its DBAPI
    connection keeps for the statement; returns the cursor, its rows to be read at once
    (the next run of the statement on the connection replaces them). Rows are psycopg's
    tuples: no SQLAlchemy type processing (an enum column comes back as its text)."""
    pooled = connection.connection
    driver: psycopg.Connection[Any] = pooled.driver_connection  # type: ignore[assignment]
    kept: dict[str, psycopg.Cursor[Any]] = pooled.info.setdefault(_KEPT, {})
    cursor_class = _cursor_classes.get(connection.engine, psycopg.Cursor)
    cursor = kept.get(statement.sql)
    if (
        cursor is None
        or cursor.closed
        or cursor.connection is not driver
        or type(cursor) is not cursor_class
    ):
        cursor = kept[statement.sql] = cursor_class(driver)
    try:
        return cursor.execute(statement.sql, {**statement.constants, **params})
    except psycopg.Error as exc:
        dialect: Any = connection.dialect
        lost = bool(dialect.is_disconnect(exc, driver, cursor))
        if lost:
            connection.invalidate(exc)
        raise DBAPIError.instance(
            statement.sql,
            None,  # never the values: an address or a phone number
            exc,
            psycopg.Error,
            connection_invalidated=lost,
            dialect=connection.dialect,
        ) from exc
