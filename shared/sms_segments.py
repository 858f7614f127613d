"""How many SMS segments a body costs, the way Twilio's message-segment-calculator counts.

A segment carries 140 octets (1,120 bits). GSM-7 characters take 7 bits, its extension
characters (``^ { } \\ [ ] ~ | €`` and form feed) 14; one character outside GSM-7 makes the
whole body UCS-2, where every UTF-16 code unit takes 16 bits (an emoji takes two). A body
that needs more than one segment gives each segment a 48-bit header, which is why the limits
are 160/153 and 70/67. A grapheme (an emoji with its modifiers, a letter with its marks) is
never split across two segments.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import regex

SEGMENT_BITS = 1120
HEADER_BITS = 48

_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = frozenset("\f^{}\\[]~|€")
_GRAPHEME = regex.compile(r"\X")


class Encoding(StrEnum):
    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


@dataclass(frozen=True)
class Segmentation:
    encoding: Encoding
    segments: int


def _is_gsm7(grapheme: str) -> bool:
    return all(ch in _GSM7_BASIC or ch in _GSM7_EXTENSION for ch in grapheme)


def _bits(grapheme: str, encoding: Encoding) -> int:
    if encoding is Encoding.GSM7:
        return sum(14 if ch in _GSM7_EXTENSION else 7 for ch in grapheme)
    return 16 * (len(grapheme.encode("utf-16-le")) // 2)


def segment(body: str) -> Segmentation:
    """The encoding Twilio picks for `body` and the number of segments it is sent as."""
    graphemes: list[str] = _GRAPHEME.findall(body)
    encoding = Encoding.GSM7 if all(map(_is_gsm7, graphemes)) else Encoding.UCS2
    # Each segment is the list of its graphemes' sizes; the first gets a header only once a
    # second segment is needed, and hands over whatever no longer fits beside that header.
    segments: list[list[int]] = [[]]
    has_header = [False]
    for grapheme in graphemes:
        size = _bits(grapheme, encoding)
        current = segments[-1]
        used = sum(current) + (HEADER_BITS if has_header[-1] else 0)
        if used + size > SEGMENT_BITS:
            moved: list[int] = []
            if not has_header[-1]:
                has_header[-1] = True
                while current and sum(current) + HEADER_BITS > SEGMENT_BITS:
                    moved.insert(0, current.pop())
            segments.append(moved)
            has_header.append(True)
            current = segments[-1]
        current.append(size)
    return Segmentation(encoding=encoding, segments=len(segments))


def count_segments(body: str) -> int:
    """Segments billed for `body` (at least one)."""
    return segment(body).segments
