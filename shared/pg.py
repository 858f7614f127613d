"""asyncpg types shared by every module that talks to Postgres."""

from __future__ import annotations

import asyncio
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A plain connection or one borrowed from the pool: domain functions accept either.
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

# Errors that mean "the database is not reachable right now": callers answer 503 / retry.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
)
