"""Cursor (keyset) pagination: `limit`, `cursor` in; `items`, `next_cursor` out.

A cursor is the sort key of the last item returned, so pages stay stable while rows are
added, and every page is one index range scan however deep the client goes.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import Select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

from boxoffice_booking.problems import InvalidCursor

T = TypeVar("T")
Row = TypeVar("Row")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class PageParams(BaseModel):
    limit: int
    cursor: str | None


def page_params(
    limit: Annotated[int, Query(ge=1, le=100, description="Items per page.")] = 20,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the previous page.")
    ] = None,
) -> PageParams:
    return PageParams(limit=limit, cursor=cursor)


PageDep = Annotated[PageParams, Depends(page_params)]


def encode_cursor(moment: datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps([moment.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        moment, row_id = json.loads(raw)
        parsed = datetime.fromisoformat(moment), uuid.UUID(row_id)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InvalidCursor("Pass back the `next_cursor` of a previous page unchanged.") from exc
    if parsed[0].tzinfo is None:
        raise InvalidCursor("Pass back the `next_cursor` of a previous page unchanged.")
    return parsed


def paginate(
    session: Session,
    stmt: Select[Row],
    params: PageParams,
    sort_column: InstrumentedAttribute[datetime],
    id_column: InstrumentedAttribute[uuid.UUID],
    key: Callable[[Row], tuple[datetime, uuid.UUID]],
    *,
    descending: bool = False,
) -> tuple[Sequence[Row], str | None]:
    """Run `stmt` for one page ordered by (sort_column, id_column); return rows and next cursor."""
    if params.cursor is not None:
        after = tuple_(sort_column, id_column)
        position = tuple_(*decode_cursor(params.cursor))
        stmt = stmt.where(after < position if descending else after > position)
    order: list[Any] = (
        [sort_column.desc(), id_column.desc()] if descending else [sort_column, id_column]
    )
    rows = session.scalars(stmt.order_by(*order).limit(params.limit + 1)).all()
    if len(rows) <= params.limit:
        return rows, None
    rows = rows[: params.limit]
    return rows, encode_cursor(*key(rows[-1]))
