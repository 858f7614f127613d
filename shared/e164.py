"""Phone numbers: normalise to E.164 with `phonenumbers`, and the country allow-list."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable

import phonenumbers
from phonenumbers import NumberParseException, ValidationResult

from shared.errors import InvalidPhoneNumber

EU_CALLING_CODES = frozenset(
    {43, 32, 359, 385, 357, 420, 45, 372, 358, 33, 49, 30, 36, 353, 39, 371, 370, 352, 356,
     31, 48, 351, 40, 421, 386, 34, 46}
)  # fmt: skip
DEFAULT_ALLOWED_CALLING_CODES = frozenset({966, 971, 1, 44}) | EU_CALLING_CODES

_EXAMPLE = "Use the international format with a plus sign and country code, e.g. +14155552671."
_PREFIXES = ("whatsapp:", "sip:", "sips:", "client:", "tel:", "messenger:", "rcs:")
_SEPARATORS = re.compile(r"[\s()\-.\u00a0\u200e\u200f\u202a-\u202e]")
_EXTENSION = re.compile(r"(ext|#|;|\d\s*x\s*\d)")


@functools.lru_cache(maxsize=8192)  # pure; every webhook parses the same few numbers
def normalize_e164(raw: str) -> str:
    """Return `raw` as E.164 (`+15551234567`) or raise InvalidPhoneNumber with a friendly reason.

    Judges by what is possible (country code and length), not by the assigned-range tables,
    which lag real allocations.
    """
    text = unicodedata.normalize("NFKC", raw or "").strip()
    if not text:
        raise InvalidPhoneNumber("Enter a phone number. " + _EXAMPLE)
    lowered = text.lower()
    if lowered.startswith(_PREFIXES) or lowered == "anonymous":
        raise InvalidPhoneNumber(
            "Enter a plain phone number, without a 'whatsapp:', 'sip:' or 'client:' prefix. "
            + _EXAMPLE
        )
    if _EXTENSION.search(lowered):
        raise InvalidPhoneNumber("Phone numbers with an extension cannot be connected. " + _EXAMPLE)
    compact = _SEPARATORS.sub("", text)
    if any(ch.isalpha() for ch in compact):
        raise InvalidPhoneNumber(
            "Letters are not allowed; spell a vanity number out in digits. " + _EXAMPLE
        )
    if not compact.startswith("+"):
        raise InvalidPhoneNumber("The number needs a plus sign and country code. " + _EXAMPLE)
    # unicodedata.decimal maps every Unicode decimal digit (Arabic-Indic too) to its value.
    try:
        digits = "".join(str(unicodedata.decimal(ch)) for ch in compact[1:])
    except ValueError:
        raise InvalidPhoneNumber("Only digits may follow the plus sign. " + _EXAMPLE) from None
    if not digits or digits[0] == "0":
        raise InvalidPhoneNumber("The country code is missing after the plus sign. " + _EXAMPLE)
    try:
        number = phonenumbers.parse("+" + digits, None)
    except NumberParseException:
        raise InvalidPhoneNumber("That country code does not exist. " + _EXAMPLE) from None
    if phonenumbers.region_code_for_country_code(number.country_code or 0) == "ZZ":
        raise InvalidPhoneNumber("That country code does not exist. " + _EXAMPLE)
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason == ValidationResult.TOO_SHORT:
        raise InvalidPhoneNumber("That number is too short for its country. " + _EXAMPLE)
    if reason == ValidationResult.TOO_LONG:
        raise InvalidPhoneNumber("That number is too long for its country. " + _EXAMPLE)
    if reason not in (ValidationResult.IS_POSSIBLE, ValidationResult.IS_POSSIBLE_LOCAL_ONLY):
        raise InvalidPhoneNumber("That number cannot exist for its country. " + _EXAMPLE)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@functools.lru_cache(maxsize=8192)
def calling_code(e164: str) -> int:
    """The country calling code of an E.164 number (`+9665...` -> 966)."""
    return int(phonenumbers.parse(e164, None).country_code or 0)


def calling_code_for(region_or_code: str) -> int:
    """Accept `EG`, `20` or `+20` and return the calling code (for enabling a region)."""
    text = region_or_code.strip().lstrip("+")
    if text.isdigit():
        code = int(text)
        if phonenumbers.region_code_for_country_code(code) == "ZZ":
            raise InvalidPhoneNumber(f"Unknown country calling code: {region_or_code}")
        return code
    code = phonenumbers.country_code_for_region(text.upper())
    if not code:
        raise InvalidPhoneNumber(f"Unknown region: {region_or_code}")
    return int(code)


def region_allowed(e164: str, enabled_calling_codes: Iterable[int] = ()) -> bool:
    """True when the number's country is on the default allow-list or enabled for the workspace."""
    code = calling_code(e164)
    return code in DEFAULT_ALLOWED_CALLING_CODES or code in set(enabled_calling_codes)
