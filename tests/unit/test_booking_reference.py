"""Booking references: eight letters of an alphabet without look-alikes, each as likely."""

from __future__ import annotations

import re
import uuid
from collections import Counter

from boxoffice_bookings.holds import REFERENCE_ALPHABET, HoldRequest, new_reference


def test_the_alphabet_has_32_distinct_letters_without_look_alikes() -> None:
    # new_reference picks a letter by a random byte's low five bits: that is uniform only
    # over exactly 32 letters.
    assert len(REFERENCE_ALPHABET) == 32
    assert len(set(REFERENCE_ALPHABET)) == 32
    assert not set(REFERENCE_ALPHABET) & set("01IO")


def test_references_are_eight_letters_of_the_alphabet_each_as_likely() -> None:
    references = [new_reference() for _ in range(10_000)]
    pattern = re.compile(f"[{REFERENCE_ALPHABET}]{{8}}")
    assert all(pattern.fullmatch(reference) for reference in references)
    # 40 random bits: two alike among 10,000 happen once in about 22,000 runs; ten never.
    assert len(set(references)) > len(references) - 10
    letters = Counter("".join(references))
    assert set(letters) == set(REFERENCE_ALPHABET)
    expected = 80_000 / 32  # 2,500 each, standard deviation about 49
    assert all(0.8 * expected < count < 1.2 * expected for count in letters.values()), letters
    # And by position: a letter's chance does not depend on where it stands.
    for position in range(8):
        column = Counter(reference[position] for reference in references)
        assert all(200 < column[letter] < 430 for letter in REFERENCE_ALPHABET), column


def test_each_hold_request_gets_its_own_reference() -> None:
    first, second = (
        HoldRequest(uuid.uuid4(), ["A1"], "zoë@exämple.com", None, 600, False) for _ in range(2)
    )
    assert first.reference != second.reference
    assert first.booking_id != second.booking_id
