"""What a voice test waits for in the database once the caller is gone."""

from __future__ import annotations

import asyncpg

from shared import calls as calls_db
from tests.support.polling import eventually


async def ended_call(pool: asyncpg.Pool, call_sid: str, within: float = 30.0) -> calls_db.Call:
    """The call row, once the worker or Twilio's status callback has ended it."""

    async def probe() -> calls_db.Call | None:
        async with pool.acquire() as conn:
            call = await calls_db.get_call(conn, call_sid)
        return call if call and call.ended_at else None

    return await eventually(probe, within=within, what=f"call {call_sid} to end")
