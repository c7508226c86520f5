"""How long an SMS is: its encoding (GSM-7 or UCS-2), its length in that
encoding's units, and how many segments it is billed as. Pure: no database."""

from __future__ import annotations

from dataclasses import dataclass

# GSM 03.38: the basic alphabet (one septet each) and the extension table
# (an escape septet plus one: two each).
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = frozenset("\f^{}\\[~]|€")
GSM_SINGLE, GSM_PART = 160, 153  # septets; a part loses 7 to the concatenation header
UCS2_SINGLE, UCS2_PART = 70, 67  # UTF-16 code units


@dataclass(frozen=True)
class SmsLength:
    """``characters`` counts in the encoding's units: septets for GSM-7 (an
    extension character is two), UTF-16 code units for UCS-2 (an emoji is two)."""

    encoding: str
    characters: int
    segments: int


def sms_segments(text: str) -> SmsLength:
    """How an SMS body is encoded and how many segments it is billed as."""
    if all(c in GSM_BASIC or c in GSM_EXTENSION for c in text):
        costs = [2 if c in GSM_EXTENSION else 1 for c in text]
        return SmsLength("GSM-7", sum(costs), _segments(costs, GSM_SINGLE, GSM_PART))
    costs = [2 if ord(c) > 0xFFFF else 1 for c in text]
    return SmsLength("UCS-2", sum(costs), _segments(costs, UCS2_SINGLE, UCS2_PART))


def _segments(costs: list[int], single: int, part: int) -> int:
    total = sum(costs)
    if total <= single:
        return 1 if total else 0
    # An escape pair or a surrogate pair is never split across two parts, so a
    # part may end one unit short: packing counts that, ceil(total / part) would not.
    count, used = 1, 0
    for cost in costs:
        if used + cost > part:
            count, used = count + 1, 0
        used += cost
    return count
