"""A showtime's cached seat entries read in bulk (`decode_states`, the seat map's read) say
exactly what reading each entry alone (`decode_state`) says, as bytes or as text."""

from __future__ import annotations

from boxoffice_booking.seat_cache import decode_state, decode_states
from hypothesis import given
from hypothesis import strategies as st

NOW_MS = 1_800_000_000_000

plain = st.sampled_from(["a", "b", "s"])
hold = st.integers(NOW_MS - 10_000, NOW_MS + 10_000).map(lambda ms: f"h:{ms}")
settled = plain | hold
# A hold in flight: "p:<until>:<token>:<the entry before, or nothing>".
in_flight = st.tuples(
    st.integers(0, 2**41), st.text("0123456789abcdef", max_size=8), settled | st.just("")
).map(lambda t: f"p:{t[0]}:{t[1]}:{t[2]}")
labels = st.text(st.characters(codec="utf-8"), min_size=1, max_size=6)
entries = st.dictionaries(labels, settled | in_flight, max_size=40)


def one_by_one(values: dict[str, str]) -> dict[str, str]:
    decoded = {label: decode_state(value, NOW_MS) for label, value in values.items()}
    return {label: status for label, status in decoded.items() if status is not None}


@given(entries)
def test_bulk_decoding_matches_each_entry_decoded_alone(values: dict[str, str]) -> None:
    expected = one_by_one(values)
    as_bytes = {label.encode(): value.encode() for label, value in values.items()}
    assert decode_states(as_bytes, NOW_MS) == expected
    assert decode_states(values, NOW_MS) == expected


def test_what_each_kind_of_entry_reads_as() -> None:
    values = {
        "A1": b"a",
        "A2": b"b",
        "A3": b"s",
        "Ä4": f"h:{NOW_MS + 1}".encode(),
        "A5": f"h:{NOW_MS - 1}".encode(),
        "A6": f"p:{NOW_MS}:tok:s".encode(),
        "A7": f"p:{NOW_MS}:tok:".encode(),
    }
    as_bytes = {label.encode(): value for label, value in values.items()}
    assert decode_states(as_bytes, NOW_MS) == {
        "A1": "available",
        "A2": "blocked",
        "A3": "sold",
        "Ä4": "held",
        "A5": "available",
        "A6": "sold",
    }
