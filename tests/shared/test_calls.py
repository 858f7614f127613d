import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg

from shared import billing, calls, conversations, workspaces
from tests.support import factories


async def _open(conn: asyncpg.pool.PoolConnectionProxy, ws_id: object, sid: str) -> calls.Call:
    return await calls.open_call(
        conn,
        call_sid=sid,
        workspace_id=ws_id,  # type: ignore[arg-type]
        channel_id=None,
        agent_id=None,
        source="twilio",
        from_number="+14155550100",
        to_number="+15551234567",
    )


async def test_open_call_is_idempotent_under_concurrency(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn)

    async def open_once() -> calls.Call:
        async with pool.acquire() as c:
            return await _open(c, ws.id, "CA-same")

    results = await asyncio.gather(*(open_once() for _ in range(5)))
    assert len({r.conversation_id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    async with pool.acquire() as conn:
        assert await conn.fetchval("select count(*) from conversations") == 1


async def test_finish_call_charges_whole_minutes_once(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn, credits_minor=1_000)
        call = await _open(conn, ws.id, "CA-1")
        await calls.mark_connected(conn, "CA-1")
        first = await calls.finish_call(conn, "CA-1", status="completed", duration_seconds=61)
        again = await calls.finish_call(conn, "CA-1", status="completed", duration_seconds=61)
        conv = await conversations.get_conversation(conn, call.conversation_id)
        balance = (await workspaces.get_workspace(conn, ws.id)).credit_balance_minor
        charges = await billing.list_charges(conn, ws.id)
    assert first is not None and first.created and first.quantity == 2
    assert again is not None and not again.created
    assert conv["status"] == "closed"
    assert len(charges) == 1 and balance == 1_000 - 2 * 9


async def test_unanswered_call_is_closed_without_charge(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn)
        await _open(conn, ws.id, "CA-2")
        result = await calls.finish_call(conn, "CA-2", status="no-answer", duration_seconds=0)
        assert result is None
        assert await billing.list_charges(conn, ws.id) == []


async def test_duration_from_connected_to_ended_when_not_given(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn)
        await _open(conn, ws.id, "CA-3")
        start = datetime.now(UTC) - timedelta(seconds=125)
        await calls.mark_connected(conn, "CA-3", at=start)
        result = await calls.finish_call(
            conn, "CA-3", status="completed", ended_at=start + timedelta(seconds=125)
        )
        row = await calls.get_call(conn, "CA-3")
    assert row is not None and row.duration_seconds == 125
    assert result is not None and result.quantity == 3
