"""Keypad presses (DTMF) of one call: the hand-off digit, and entries typed for the model.

A press arrives from the SIP participant (livekit-sip's RFC 2833 events) or from a browser
participant that publishes DTMF; both come to the room as `sip_dtmf_received`. The agent's
hand-off digit, pressed as the first key of an entry, asks for a person at once; any other
keys are collected until `#` (`*` when `#` is the hand-off digit), a pause of
`digit_timeout` seconds or `max_digits` keys, and the entry goes to the model as the
caller's input.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from shared.call_flow import end_of_entry_key

logger = logging.getLogger("worker.keypad")

KEYS = frozenset("0123456789*#ABCD")  # what a DTMF event may carry (RFC 4733 events 0-15)


class Keypad:
    """Collects one call's presses; calls `on_handoff()` or `on_entry(digits)`."""

    def __init__(
        self,
        *,
        handoff_digit: str,
        digit_timeout: float,
        max_digits: int,
        on_handoff: Callable[[], None],
        on_entry: Callable[[str], None],
    ) -> None:
        self.handoff_digit = handoff_digit
        self.end_key = end_of_entry_key(handoff_digit)
        self.digit_timeout = digit_timeout
        self.max_digits = max(1, max_digits)
        self._on_handoff = on_handoff
        self._on_entry = on_entry
        self._digits: list[str] = []
        self._timer: asyncio.TimerHandle | None = None

    @property
    def pending(self) -> str:
        """The keys of the entry being typed."""
        return "".join(self._digits)

    def press(self, key: str) -> bool:
        """One press; False when `key` is no keypad key (the event is untrusted input)."""
        key = key.strip().upper()
        if key not in KEYS:
            return False
        if not self._digits and self.handoff_digit and key == self.handoff_digit:
            self._cancel_timer()
            self._on_handoff()
            return True
        if key == self.end_key:
            self.flush()
            return True
        self._digits.append(key)
        if len(self._digits) >= self.max_digits:
            self.flush()
            return True
        self._cancel_timer()
        self._timer = asyncio.get_running_loop().call_later(self.digit_timeout, self.flush)
        return True

    def flush(self) -> None:
        """End the entry being typed (if any) and hand it on."""
        self._cancel_timer()
        if not self._digits:
            return
        digits = self.pending
        self._digits.clear()
        self._on_entry(digits)

    def close(self) -> None:
        self._cancel_timer()
        self._digits.clear()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
