"""How the aiohttp clients sort a transport failure: never sent, or sent with no whole answer.

Each client maps with this once, at its edge, into the ProviderError tree of shared/errors.py.
"""

from __future__ import annotations

import aiohttp

# What a request can raise short of an HTTP answer (a read timeout is a TimeoutError).
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (aiohttp.ClientError, TimeoutError)

# Raised before the request reached the server: trying again cannot act twice.
_NEVER_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


def never_sent(exc: BaseException) -> bool:
    """Whether the request failed before it left (connect refused, DNS, connect timeout)."""
    return isinstance(exc, _NEVER_SENT)
