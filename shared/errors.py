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
    └── ProviderError           an external API failed (retryable: the same request may be
        │                       tried again), mapped from the transport at each client's edge
        ├── ProviderStatusError     the provider answered with an HTTP error status
        ├── ProviderConnectionError the request never left: nothing happened, even for a send
        └── ProviderTimeoutError    sent, but the answer was late or lost: a send may have happened

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
    """A provider failed in a way the other classes do not name (a refused URL, bad output)."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class ProviderStatusError(ProviderError):
    """`body` is an excerpt of the answer; `retry_after` the wait the provider asked for;
    `code` the provider's own error code when the answer names one (Twilio's 21610)."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        retryable: bool,
        body: str = "",
        retry_after: float | None = None,
        code: int | None = None,
    ) -> None:
        super().__init__(message, retryable=retryable)
        self.status = status
        self.body = body[:200]
        self.retry_after = retry_after
        self.code = code


class ProviderConnectionError(ProviderError):
    """Connect refused, DNS failure, connect timeout: always safe to try again."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class ProviderTimeoutError(ProviderError):
    """No whole answer (read timeout, dropped connection); retryable only for idempotent calls,
    so a client that sends decides by this type, not by `retryable`."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)
