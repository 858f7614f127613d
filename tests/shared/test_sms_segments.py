import pytest

from shared.sms_segments import Encoding, count_segments, segment

DIGITS = "1234567890"


def _digits(n: int) -> str:
    return (DIGITS * (n // 10 + 1))[:n]


@pytest.mark.parametrize(
    ("body", "encoding", "segments"),
    [
        # Vectors from Twilio's message-segment-calculator tests.
        ("{" + _digits(158), Encoding.GSM7, 1),  # 160 septets: the escape counts double
        ("{" + _digits(159), Encoding.GSM7, 2),
        ("😜" + _digits(68), Encoding.UCS2, 1),  # 70 code units: the emoji is two
        ("😜" + _digits(69), Encoding.UCS2, 2),
        (_digits(307), Encoding.GSM7, 3),  # 153 + 153 + 1
        ("😜" + _digits(133), Encoding.UCS2, 3),  # 67 + 67 + 1
    ],
)
def test_counts_match_twilios_calculator(body: str, encoding: Encoding, segments: int) -> None:
    result = segment(body)
    assert (result.encoding, result.segments) == (encoding, segments)


def test_gsm7_holds_160_in_one_and_153_per_part() -> None:
    assert count_segments("a" * 160) == 1
    assert count_segments("a" * 161) == 2
    assert count_segments("a" * 306) == 2
    assert count_segments("a" * 307) == 3


def test_ucs2_holds_70_in_one_and_67_per_part() -> None:
    assert segment("ب" * 70).encoding is Encoding.UCS2
    assert count_segments("ب" * 70) == 1
    assert count_segments("ب" * 71) == 2
    assert count_segments("ب" * 134) == 2
    assert count_segments("ب" * 135) == 3


def test_extension_characters_count_double() -> None:
    assert count_segments("€" * 80) == 1
    assert count_segments("€" * 81) == 2
    assert segment("[x]^{y}|~\\").encoding is Encoding.GSM7


def test_one_non_gsm_character_makes_the_whole_body_ucs2() -> None:
    body = "a" * 69 + "’"  # a curly apostrophe is not GSM-7
    assert segment(body).encoding is Encoding.UCS2
    assert count_segments(body) == 1
    assert count_segments(body + "a") == 2


def test_a_grapheme_is_never_split_across_segments() -> None:
    # 134 code units fit two UCS-2 parts only if the emoji could be split at the boundary.
    assert count_segments("ب" * 66 + "😜" + "ب" * 66) == 3
    # Likewise a GSM escape pair never straddles two parts.
    assert count_segments("a" * 152 + "{" + "a" * 152) == 3
    family = "👨\u200d👩\u200d👧\u200d👦"  # one grapheme, 11 code units
    assert count_segments(family * 6) == 1  # 66 units
    assert count_segments(family * 7) == 2


def test_twilio_maximum_bodies() -> None:
    assert count_segments("a" * 1600) == 11
    assert count_segments("مرحبا" * 320) == 24
    assert count_segments("") == 1
