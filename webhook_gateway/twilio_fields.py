"""Twilio's form fields as the domain may take them, for every webhook route.

A valid signature proves Twilio sent the concatenated text, not how it splits into fields:
Twilio signs name+value pairs with no separator, so a replay can move text from one field's
value into the next field's name without breaking the signature (`MessageSid=<sid>NumMedia0`
with `NumMedia` dropped). Provider ids are therefore held to their real shape and field names
to Twilio's, so any such split is refused. Text is stripped of what Postgres (NUL) and XML
(other control characters) cannot hold, and integers are bounded before they reach an
`integer` column.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from fastapi import HTTPException

from shared.text_safety import xml_safe

logger = logging.getLogger("webhook_gateway.twilio")

# Twilio's ids: a two-letter prefix and 32 lowercase hex digits.
MESSAGE_SID = re.compile(r"(?:SM|MM)[0-9a-f]{32}")
CALL_SID = re.compile(r"CA[0-9a-f]{32}")
RECORDING_SID = re.compile(r"RE[0-9a-f]{32}")
ACCOUNT_SID = re.compile(r"AC[0-9a-f]{32}")

# Twilio's field names are CamelCase words (`SipHeader_X-Foo` and `DialSipHeader_...` carry
# SIP header names). A name starting with a digit or punctuation is text moved out of the
# previous field's value or out of the signed URL.
_FIELD_NAME = re.compile(r"[A-Z][A-Za-z0-9]*(?:_[A-Za-z0-9][A-Za-z0-9_.\-]*)?")
_MAX_NAME = 128

MAX_CALL_SECONDS = 24 * 3600  # Twilio ends any call at 24 hours
MAX_ADDRESS_CHARS = 256  # an E.164 number, `client:…`, `whatsapp:…` or a SIP URI
MAX_SHORT_CHARS = 64  # statuses, error codes, opt-out types
MAX_URL_CHARS = 2048
# A `<Gather>`'s `Digits`: keypad keys only. An entry longer than this is not one a caller
# typed (refused); a long one within it is cut to the setting (settings.calls).
_KEYPAD = re.compile(r"[0-9*#]*")
MAX_KEYPAD_CHARS = 256


def invalid(detail: str) -> HTTPException:
    return HTTPException(status_code=400, detail=detail)


def check_names(names: Iterable[str]) -> None:
    """Refuse (400) a form whose field names are not shaped like Twilio's."""
    for name in names:
        if len(name) > _MAX_NAME or not _FIELD_NAME.fullmatch(name):
            raise invalid(f"unexpected field name {name[:40]!r}")


def text(value: str, *, max_chars: int | None = None, field: str = "field") -> str:
    """`value` without what Postgres or XML cannot hold; 400 when longer than `max_chars`."""
    cleaned = xml_safe(value)
    if max_chars is not None and len(cleaned) > max_chars:
        raise invalid(f"{field} is too long")
    return cleaned


def sid(value: str, shape: re.Pattern[str], *, field: str) -> str:
    """A provider id of its real shape, or "" when the field is absent; 400 otherwise."""
    if value and not shape.fullmatch(value):
        raise invalid(f"{field} is not a Twilio id")
    return value


def count(value: str, *, maximum: int) -> int | None:
    """A positive count up to `maximum`; None for anything else (a field we can do without)."""
    if not value.isascii() or not value.isdigit() or len(value) > len(str(maximum)):
        return None
    number = int(value)
    return number if 0 < number <= maximum else None


def seconds(value: str, *, field: str, maximum: int = MAX_CALL_SECONDS) -> int | None:
    """A duration in whole seconds; None when absent or not a number.

    Above `maximum` it is clamped, not refused: a 4xx on a status callback is never retried,
    so refusing would leave the call open and uncharged; clamped, it is closed and charged
    once for the longest call Twilio allows, and the log says so."""
    digits = value.strip()
    if not digits.isascii() or not digits.isdigit():
        return None
    if len(digits) > len(str(maximum)) or int(digits) > maximum:
        logger.warning(
            "twilio.duration_clamped", extra={"field": field, "value": digits[:32], "max": maximum}
        )
        return maximum
    return int(digits)


def digits(value: str, *, max_digits: int, field: str = "Digits") -> str:
    """A keypad entry ("" when none): 400 unless only 0-9 * #; cut to `max_digits`."""
    entry = value.strip()
    if len(entry) > MAX_KEYPAD_CHARS or not _KEYPAD.fullmatch(entry):
        raise invalid(f"{field} is not a keypad entry")
    if len(entry) > max_digits:
        logger.warning("twilio.digits_cut", extra={"field": field, "length": len(entry),
                                                   "max": max_digits})  # fmt: skip
        return entry[:max_digits]
    return entry
