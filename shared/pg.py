"""asyncpg types, and the errors that mean an outage, for every module that talks to Postgres."""

from __future__ import annotations

import socket
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A plain connection or one borrowed from the pool: domain functions accept either.
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"


class DatabaseUnreachable(ConnectionError):
    """Opening a connection failed at the socket (host unreachable, no such socket file...):
    the pool's connect raises this for any OSError the classes below do not already name."""


_exc = asyncpg.exceptions

# Errors that mean "the database is not reachable right now": callers answer 503 / retry.
# Not every OSError: a missing file or a bad address is a bug, not an outage.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    ConnectionError,  # refused, reset, broken pipe; DatabaseUnreachable
    TimeoutError,  # connect, acquire or command timeout (asyncio.TimeoutError is this class)
    socket.gaierror,  # the host name does not resolve
    _exc.ConnectionDoesNotExistError,  # the server went away in the middle of a query
    _exc.ConnectionFailureError,
    _exc.ClientCannotConnectError,
    _exc.ConnectionRejectionError,
    _exc.TransactionResolutionUnknownError,
    _exc.CannotConnectNowError,  # starting up, shutting down, in recovery
    _exc.AdminShutdownError,
    _exc.CrashShutdownError,
    _exc.TooManyConnectionsError,
    # A connection the server closed under a transaction raises plain InterfaceError
    # ("the underlying connection is closed"), and a restart mid-query can leave asyncpg's
    # protocol in a state it reports as InternalClientError.
    _exc.InterfaceError,
    _exc.InternalClientError,
)
# ...but these InterfaceErrors are raised before anything reaches the server: our bug.
_BUGS: tuple[type[Exception], ...] = (_exc.DataError, _exc.ClientConfigurationError)


def is_outage(exc: BaseException) -> bool:
    """An error of UNAVAILABLE_ERRORS that is not a bad argument or configuration of ours."""
    return isinstance(exc, UNAVAILABLE_ERRORS) and not isinstance(exc, _BUGS)
