"""Walk every item of a cursor-paginated list, fetching pages as they are needed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TypeVar

from boxoffice_client.models import Page

T = TypeVar("T")


def iterate(fetch: Callable[[str | None], Page[T]]) -> Iterator[T]:
    """Items of every page: `fetch(cursor)` returns one page, starting from cursor None."""
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        yield from page.items
        if page.next_cursor is None or not page.items:
            return
        cursor = page.next_cursor


async def aiterate(fetch: Callable[[str | None], Awaitable[Page[T]]]) -> AsyncIterator[T]:
    """The async twin of `iterate`."""
    cursor: str | None = None
    while True:
        page = await fetch(cursor)
        for item in page.items:
            yield item
        if page.next_cursor is None or not page.items:
            return
        cursor = page.next_cursor
