"""Every failure the domain can raise, in one tree.

    WasslaError
    ├── MissingSetting          a command needs a setting that is not set
    ├── InvalidInput            bad input from a person or a provider (friendly message)
    │   └── InvalidPhoneNumber
    ├── NotFound                no such workspace / agent / channel / conversation
    ├── Conflict                the write would break a uniqueness rule
    │   └── NumberInUse         the number is active on another channel of that kind
    ├── PlanExcludesChannel     the workspace's plan does not include SMS or voice
    ├── Unauthenticated         no user token, or one that is expired, forged or malformed
    ├── Forbidden               the member's role does not allow the action
    ├── SchemaNotCurrent        migrations are pending or an applied one was edited
    └── ProviderError           an external API failed (retryable tells callers what to do)

The gateway maps these to HTTP status codes or TwiML in one place; the worker to spoken
apologies in one place.
"""

from __future__ import annotations


class WasslaError(Exception):
    """Base of every error this project raises on purpose."""


class MissingSetting(WasslaError):
    def __init__(self, names: list[str]) -> None:
        self.names = names
        super().__init__("missing required setting(s): " + ", ".join(names))


class InvalidInput(WasslaError):
    """The message is written for the person who typed the input."""


class InvalidPhoneNumber(InvalidInput):
    pass


class NotFound(WasslaError):
    pass


class Conflict(WasslaError):
    pass


class NumberInUse(Conflict):
    pass


class PlanExcludesChannel(WasslaError):
    pass


class Unauthenticated(WasslaError):
    """`reason` is "missing" (no credentials sent) or "invalid" (sent but not acceptable)."""

    def __init__(self, message: str, *, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


class Forbidden(WasslaError):
    pass


class SchemaNotCurrent(WasslaError):
    pass


class ProviderError(WasslaError):
    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
