"""Client spans for statements psycopg runs outside SQLAlchemy's execution, like
`trace_sqlalchemy`'s: the asyncio pool's (`boxoffice_db.aio`) and kept cursors'
(`boxoffice_db.kept`).

The hold and the Idempotency-Key claim run on that pool, and the notifier's delivery on kept
cursors, so without this a booking's trace has a gap where its most important SQL is. Each
statement gets a CLIENT span named `<OPERATION> <database>` with the statement text (never its
parameters), the same attributes as the SQLAlchemy spans. Pass `trace_async_connection` as
the pool's `configure` hook; `trace_sqlalchemy` makes an engine's kept cursors `TracedCursor`s.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from psycopg import AsyncConnection, AsyncCursor, BaseConnection, Cursor, sql

from boxoffice_telemetry.tracing import spans_recorded, tracer, tracing_enabled


def _statement(query: Any, conn: BaseConnection[Any]) -> str:
    if isinstance(query, sql.Composable):
        try:
            return query.as_string(conn)
        except Exception:  # a statement that only the server can render: name what we know
            return "SQL"
    if isinstance(query, bytes):
        return query.decode(errors="replace")
    return str(query)


@contextmanager
def _span(query: Any, connection: BaseConnection[Any]) -> Iterator[trace.Span]:
    statement = _statement(query, connection)
    operation = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
    database = connection.info.dbname
    with tracer().start_as_current_span(
        f"{operation} {database}".strip(),
        kind=trace.SpanKind.CLIENT,
        attributes={
            "db.system": "postgresql",
            "db.name": database,
            "db.statement": statement[:2000],
            "db.operation": operation,
        },
    ) as span:
        yield span


class TracedAsyncCursor(AsyncCursor[Any]):
    """An AsyncCursor whose statements are client spans."""

    async def execute(self, query: Any, params: Any = None, **kwargs: Any) -> TracedAsyncCursor:
        with _span(query, self.connection):
            await super().execute(query, params, **kwargs)
        return self

    async def executemany(self, query: Any, params_seq: Iterable[Any], **kwargs: Any) -> None:
        with _span(query, self.connection):
            await super().executemany(query, params_seq, **kwargs)


class TracedCursor(Cursor[Any]):
    """A Cursor whose statements are client spans."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> TracedCursor:
        with _span(query, self.connection):
            super().execute(query, params, **kwargs)
        return self

    def executemany(self, query: Any, params_seq: Iterable[Any], **kwargs: Any) -> None:
        with _span(query, self.connection):
            super().executemany(query, params_seq, **kwargs)


async def trace_async_connection(conn: AsyncConnection[Any]) -> None:
    """Make `conn`'s cursors traced, when this process records spans (a pool `configure` hook)."""
    if tracing_enabled() and spans_recorded():
        conn.cursor_factory = TracedAsyncCursor
