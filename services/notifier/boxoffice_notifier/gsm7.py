"""GSM 03.38 (GSM-7): what fits in one 160-character SMS without switching to UCS-2."""

from __future__ import annotations

import unicodedata

# The basic character set; each costs one septet.
BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table; each costs two septets (escape + character).
EXTENDED = set("^{}\\[~]|€\f")

SINGLE_SMS_SEPTETS = 160

# Common characters outside GSM-7 and a faithful GSM-7 spelling.
SUBSTITUTES = {
    "₹": "Rs.",
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u2013": "-",
    "\u2014": "-",
    "\u2026": "...",
    "\u00a0": " ",
    "\t": " ",
    "Ł": "L",
    "ł": "l",
    "Đ": "D",
    "đ": "d",
    "Œ": "OE",
    "œ": "oe",
}


def septets(text: str) -> int:
    """How many septets `text` takes in GSM-7; it must already be GSM-7."""
    return sum(2 if ch in EXTENDED else 1 for ch in text)


def is_gsm7(text: str) -> bool:
    return all(ch in BASIC or ch in EXTENDED for ch in text)


def to_gsm7(text: str) -> str:
    """Spell `text` in GSM-7: known substitutes, accents stripped, anything else as `?`."""
    out: list[str] = []
    for ch in text:
        if ch in BASIC or ch in EXTENDED:
            out.append(ch)
        elif ch in SUBSTITUTES:
            out.append(SUBSTITUTES[ch])
        else:
            stripped = "".join(
                c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c)
            )
            out.append(stripped if stripped and is_gsm7(stripped) else "?")
    return "".join(out)


def fit(text: str, limit: int = SINGLE_SMS_SEPTETS) -> str:
    """`text` in GSM-7, cut with an ellipsis if it would not fit in `limit` septets."""
    text = to_gsm7(text)
    if septets(text) <= limit:
        return text
    cut: list[str] = []
    used = 0
    for ch in text:
        cost = 2 if ch in EXTENDED else 1
        if used + cost > limit - 3:
            break
        cut.append(ch)
        used += cost
    return "".join(cut).rstrip() + "..."
