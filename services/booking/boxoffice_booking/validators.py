"""Field types shared by request bodies, each with an error message a client can act on."""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field

SEAT_LABEL = re.compile(r"[A-Z]{1,3}[0-9]{1,3}")
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
MAX_AMOUNT_MINOR = 10**12


def _seat_label(value: str) -> str:
    if not SEAT_LABEL.fullmatch(value):
        raise ValueError(
            "a seat label is 1-3 capital letters (the row) then 1-3 digits (the seat), e.g. 'C7'"
        )
    return value


def _e164(value: str) -> str:
    if not E164.fullmatch(value):
        raise ValueError(
            "a phone number is in E.164 form: '+', the country code, then the number, "
            "7 to 15 digits in all, e.g. '+919800000001'"
        )
    return value


def _amount_minor(value: Any) -> int:
    # bool is an int in Python, and 12.5 or "1250" are not amounts: refuse them plainly.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(
            "an amount is an integer count of the currency's minor unit (paise, cents), "
            "e.g. 25000 for 250.00"
        )
    if not 0 <= value <= MAX_AMOUNT_MINOR:
        raise ValueError(f"an amount is between 0 and {MAX_AMOUNT_MINOR} minor units")
    return value


def _plain_text(value: str) -> str:
    # PostgreSQL text cannot hold NUL, and no name needs a control character.
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise ValueError("must not contain control characters")
    return value


PlainText = Annotated[str, AfterValidator(_plain_text)]

SeatLabel = Annotated[
    str,
    AfterValidator(_seat_label),
    Field(examples=["C7"], json_schema_extra={"pattern": "^[A-Z]{1,3}[0-9]{1,3}$"}),
]
E164Phone = Annotated[
    str,
    AfterValidator(_e164),
    Field(examples=["+919800000001"], json_schema_extra={"pattern": r"^\+[1-9][0-9]{6,14}$"}),
]
AmountMinor = Annotated[
    int,
    BeforeValidator(_amount_minor),
    Field(examples=[25000], json_schema_extra={"minimum": 0, "maximum": MAX_AMOUNT_MINOR}),
]


def _is_number(value: Any) -> bool:
    # pydantic would read a bare number as Unix time; the API documents RFC 3339 only.
    if isinstance(value, int | float):
        return True
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False


def _rfc3339_time(value: Any) -> Any:
    if _is_number(value):
        raise ValueError("a time is RFC 3339 with a time zone, e.g. '2026-11-21T10:00:00Z'")
    return value


def _rfc3339_date(value: Any) -> Any:
    if _is_number(value):
        raise ValueError("a date is RFC 3339 full-date, e.g. '2026-11-21'")
    return value


Rfc3339Time = Annotated[AwareDatetime, BeforeValidator(_rfc3339_time)]
Rfc3339Date = Annotated[date, BeforeValidator(_rfc3339_date)]
