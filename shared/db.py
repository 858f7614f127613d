"""The one asyncpg pool, built from Settings."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg

from shared import migrate
from shared.devdb import start_embedded
from shared.pg import UNAVAILABLE_ERRORS, Connection, DatabaseUnreachable
from shared.settings import Settings

Pool = asyncpg.Pool
__all__ = [
    "Connection",
    "Pool",
    "create_pool",
    "database_answers",
    "resolve_dsn",
]


async def resolve_dsn(settings: Settings) -> str:
    """DATABASE_URL when set, else the embedded server under WASSLA_DATA_DIR."""
    if settings.database_url:
        return settings.database_url
    return await asyncio.to_thread(start_embedded, settings.data_dir)


async def _init_connection(conn: Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _connect(*args: Any, **kwargs: Any) -> asyncpg.Connection[asyncpg.Record]:
    """asyncpg.connect, with every socket failure to open a connection named as an outage."""
    try:
        return await asyncpg.connect(*args, **kwargs)
    except OSError as exc:
        if isinstance(exc, UNAVAILABLE_ERRORS):
            raise
        # e.g. EHOSTUNREACH, asyncio's "Multiple exceptions" over several addresses, or the
        # embedded server's socket file gone while it restarts (FileNotFoundError).
        raise DatabaseUnreachable(f"cannot connect to the database: {exc}") from exc


async def _reset_connection(conn: Connection) -> None:
    """Nothing beyond asyncpg's own rollback of an open transaction and listener cleanup.

    asyncpg's default reset runs `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`
    on every release: one more round trip per acquire on every webhook. Our code keeps no
    session state to undo: no SET (only SET LOCAL), transaction-scoped advisory locks only,
    no cursors outside transactions, and the reply worker's listener removes itself.
    """


async def create_pool(settings: Settings, *, require_current_schema: bool = True) -> Pool:
    """Open the pool; refuse to serve on a schema that is not fully migrated."""
    dsn = await resolve_dsn(settings)
    pool: Pool = await asyncpg.create_pool(
        dsn,
        min_size=settings.db.pool_min_size,
        max_size=settings.db.pool_max_size,
        connect=_connect,
        init=_init_connection,
        reset=_reset_connection,
        command_timeout=10,
        timeout=5,
        # Plan each prepared statement once. Our statements are key lookups and small
        # batches, where Postgres's per-call custom plans were never better, and re-planning
        # the batched SMS store on every call was a large part of its cost (bench/README.md).
        server_settings={"plan_cache_mode": "force_generic_plan"},
    )
    if require_current_schema:
        try:
            async with pool.acquire() as conn:
                await migrate.check_current(conn)
        except BaseException:
            await pool.close()
            raise
    return pool


_HEALTH_CHECK_SECONDS = 2.0


async def database_answers(pool: Pool) -> bool:
    """Whether a pooled connection answers `select 1` within 2 s (health checks)."""
    try:
        async with asyncio.timeout(_HEALTH_CHECK_SECONDS), pool.acquire() as conn:
            await conn.fetchval("select 1")
    except Exception:  # noqa: BLE001 - any failure means "not healthy", never an error page
        return False
    return True
