"""Client spans for the psycopg asyncio pool (`boxoffice_db.aio`), like `trace_sqlalchemy`'s.

The hold and the Idempotency-Key claim run on that pool, so without this a booking's trace
has a gap where its most important SQL is. Each statement gets a CLIENT span named
`<OPERATION> <database>` with the statement text (never its parameters), the same attributes
as the SQLAlchemy spans. Pass `trace_async_connection` as the pool's `configure` hook.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from psycopg import AsyncConnection, AsyncCursor, sql

from boxoffice_telemetry.tracing import spans_recorded, tracer, tracing_enabled


def _statement(query: Any, conn: AsyncConnection[Any]) -> str:
    if isinstance(query, sql.Composable):
        try:
            return query.as_string(conn)
        except Exception:  # a statement that only the server can render: name what we know
            return "SQL"
    if isinstance(query, bytes):
        return query.decode(errors="replace")
    return str(query)


class TracedAsyncCursor(AsyncCursor[Any]):
    """An AsyncCursor whose statements are client spans."""

    @contextmanager
    def _span(self, query: Any) -> Iterator[trace.Span]:
        statement = _statement(query, self.connection)
        operation = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
        database = self.connection.info.dbname
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

    async def execute(self, query: Any, params: Any = None, **kwargs: Any) -> TracedAsyncCursor:
        with self._span(query):
            await super().execute(query, params, **kwargs)
        return self

    async def executemany(self, query: Any, params_seq: Iterable[Any], **kwargs: Any) -> None:
        with self._span(query):
            await super().executemany(query, params_seq, **kwargs)


async def trace_async_connection(conn: AsyncConnection[Any]) -> None:
    """Make `conn`'s cursors traced, when this process records spans (a pool `configure` hook)."""
    if tracing_enabled() and spans_recorded():
        conn.cursor_factory = TracedAsyncCursor
