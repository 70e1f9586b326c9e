"""The seat map with live states: from the Redis cache when it is ready, else PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from boxoffice_booking.problems import NotFound
from boxoffice_booking.schemas import SeatMapHeader
from boxoffice_booking.seat_cache import SeatCache, SeatLayout

# Layouts never change once a showtime exists; a process keeps the newest few rendered, and
# drops one after a minute so a showtime removed by retention stops answering soon after.
LAYOUTS_KEPT = 128
LAYOUT_MAX_AGE_SECONDS = 60.0
_STATUS_MARK = "\x00"
# Each public status as its JSON string: a read joins bytes, with no text to encode at the end.
_QUOTED = {
    status: json.dumps(status).encode() for status in ("available", "held", "sold", "blocked")
}


@dataclass(frozen=True)
class RenderedLayout:
    """A showtime's seat map serialised once, with a gap where each seat's status goes."""

    opening: bytes  # the header fields and `"seats":[`
    seats: tuple[tuple[str, bytes, bytes], ...]  # (label, JSON up to the status, JSON after it)
    rendered_at: float


def render_layout(layout: SeatLayout) -> RenderedLayout:
    """Serialise the unchanging part of a seat map: the header through the model (its UUID
    and datetime formats), each seat in `SeatStatePublic`'s field order, pydantic's compact
    form. A test checks the result against `SeatMapPublic`'s own serialisation."""
    header = SeatMapHeader(
        showtime_id=uuid.UUID(layout.showtime_id),
        film_title=layout.film_title,
        starts_at=datetime.fromisoformat(layout.starts_at),
        currency=layout.currency,
    ).model_dump_json()
    mark = json.dumps(_STATUS_MARK)
    seats = []
    for seat in layout.seats:
        text = json.dumps(
            {
                "label": seat["label"],
                "row": seat["row"],
                "number": seat["number"],
                "category": seat["category"],
                "status": _STATUS_MARK,
                "price_minor": seat["price_minor"],
                "aisle_after": seat["aisle_after"],
                "accessible": seat["accessible"],
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )
        before, after = text.split(mark)
        seats.append((seat["label"], before.encode(), after.encode()))
    opening = header[:-1] + ',"seats":['
    return RenderedLayout(opening.encode(), tuple(seats), time.monotonic())


class RenderedLayouts:
    """The newest rendered layouts of this process, shared by the API's threads."""

    def __init__(self) -> None:
        self._kept: OrderedDict[uuid.UUID, RenderedLayout] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session: Session, cache: SeatCache, showtime_id: uuid.UUID) -> RenderedLayout:
        with self._lock:
            kept = self._kept.get(showtime_id)
            if kept is not None and time.monotonic() - kept.rendered_at < LAYOUT_MAX_AGE_SECONDS:
                self._kept.move_to_end(showtime_id)
                return kept
        layout = cache.layout(session, showtime_id)
        if layout is None:
            raise NotFound(f"No showtime {showtime_id}.")
        rendered = render_layout(layout)
        with self._lock:
            self._kept[showtime_id] = rendered
            while len(self._kept) > LAYOUTS_KEPT:
                self._kept.popitem(last=False)
        return rendered


_layouts = RenderedLayouts()


def read_seat_map_json(session: Session, cache: SeatCache, showtime_id: uuid.UUID) -> bytes:
    """The `SeatMapPublic` document of a showtime, serialised: each seat available, held, sold
    or blocked; a lapsed hold already reads as available.

    A stadium's map has thousands of seats, and buyers refresh it all through an on-sale: one
    pydantic model per seat, validated again as the route's answer and dumped twice, cost
    ~14 µs a seat (74 ms of API CPU for 5,200 seats under load). The unchanging part is
    rendered once per process; a read only reads the states and fills them in."""
    rendered = _layouts.get(session, cache, showtime_id)
    states = cache.states(showtime_id)
    if states is None or len(states) < len(rendered.seats):
        states = cache.rebuild(session, showtime_id)
    status = states.get
    quoted = _QUOTED.__getitem__
    seats = b",".join(
        [
            before + quoted(status(label, "available")) + after
            for label, before, after in rendered.seats
        ]
    )
    return rendered.opening + seats + b"]}"
