import pytest

from shared.e164 import calling_code_for, normalize_e164, region_allowed
from shared.errors import InvalidPhoneNumber


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+15551234567", "+15551234567"),  # the seed's example: possible, not yet "assigned"
        ("+1 (415) 555-2671", "+14155552671"),
        ("+44 20 7946 0958", "+442079460958"),
        ("+966 50 123 4567", "+966501234567"),
        ("+٩٦٦٥٠١٢٣٤٥٦٧", "+966501234567"),  # Arabic-Indic digits
        ("+۹۷۱۵۰۱۲۳۴۵۶۷", "+971501234567"),  # Extended (Persian) Arabic-Indic digits
        ("  +33.1.23.45.67.89 ", "+33123456789"),
        ("\u202a+49 30 123456\u202c", "+4930123456"),  # bidi marks pasted from RTL text
    ],
)
def test_normalize_accepts_possible_numbers(raw: str, expected: str) -> None:
    assert normalize_e164(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("5551234567", "plus sign and country code"),
        ("0501234567", "plus sign and country code"),
        ("+1800FLOWERS", "Letters"),
        ("+14155552671 ext. 12", "extension"),
        ("+14155552671x12", "extension"),
        ("+14155552671;ext=3", "extension"),
        ("whatsapp:+14155552671", "prefix"),
        ("sip:+14155552671@example.com", "prefix"),
        ("client:alice", "prefix"),
        ("+1415555267", "too short"),
        ("+9991234567", "country code does not exist"),
        ("+0044123", "country code is missing"),
        ("", "Enter a phone number"),
        ("Anonymous", "prefix"),
    ],
)
def test_normalize_rejects_with_friendly_reason(raw: str, reason: str) -> None:
    with pytest.raises(InvalidPhoneNumber) as err:
        normalize_e164(raw)
    assert reason in str(err.value)
    assert "e.g. +14155552671" in str(err.value) or "Enter" in str(err.value)


@pytest.mark.parametrize(
    ("number", "allowed"),
    [
        ("+966501234567", True),
        ("+971501234567", True),
        ("+14155552671", True),
        ("+442079460958", True),
        ("+4930123456", True),
        ("+33123456789", True),
        ("+201001234567", False),  # Egypt: not on the default list
        ("+919812345678", False),
    ],
)
def test_default_region_allow_list(number: str, allowed: bool) -> None:
    assert region_allowed(number) is allowed


def test_region_enabled_per_workspace() -> None:
    assert region_allowed("+201001234567", [20])
    assert calling_code_for("EG") == 20
    assert calling_code_for("+20") == 20
    with pytest.raises(InvalidPhoneNumber):
        calling_code_for("QQ")
