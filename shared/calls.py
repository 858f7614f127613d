"""Calls: one row per phone call (Twilio CallSid), whichever path answers it.

A Twilio call bridged into LiveKit stays one call and one conversation: the worker finds
the row by the CallSid the gateway passed in the SIP headers. Voice minutes are charged
once per call under the key `voice_minutes:<call_sid>`, by whichever path ends it first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

import asyncpg

from shared import billing, conversations
from shared.billing import ChargeResult
from shared.models import ChargeKind
from shared.pg import Connection

CallSource = Literal["twilio", "livekit"]
TERMINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})

_COLUMNS = (
    "id, call_sid, conversation_id, workspace_id, channel_id, agent_id, source, status,"
    " from_number, to_number, connected_at, ended_at, duration_seconds, created_at"
)


@dataclass(frozen=True)
class Call:
    id: UUID
    call_sid: str
    conversation_id: UUID
    workspace_id: UUID
    channel_id: UUID | None
    agent_id: UUID | None
    source: str
    status: str
    from_number: str | None
    to_number: str | None
    connected_at: datetime | None
    ended_at: datetime | None
    duration_seconds: int | None
    created_at: datetime
    created: bool = True

    @classmethod
    def from_row(cls, row: asyncpg.Record, *, created: bool = True) -> Call:
        return cls(**dict(row), created=created)


async def open_call(
    conn: Connection,
    *,
    call_sid: str,
    workspace_id: UUID,
    channel_id: UUID | None,
    agent_id: UUID | None,
    source: CallSource,
    from_number: str | None,
    to_number: str | None,
    status: str = "ringing",
    is_test: bool = False,
    connected: bool = False,
) -> Call:
    """The call and its conversation, created once per call_sid (a retry returns the same).

    `connected` opens it already answered (connected now, in progress), saving a round trip.

    One statement: the call row is inserted first, and its conversation only if that insert
    won, so concurrent webhooks for one CallSid wait on the unique key and never open two
    conversations (the foreign key is checked at the end of the statement).
    """
    row = await conn.fetchrow(
        f"""
        with new_call as (
            insert into calls (call_sid, conversation_id, workspace_id, channel_id, agent_id,
                               source, status, from_number, to_number, connected_at)
            values ($1, gen_random_uuid(), $2, $3, $4, $5,
                    case when $10 then 'in-progress' else $6 end, $7, $8,
                    case when $10 then now() end)
            on conflict (call_sid) do nothing
            returning {_COLUMNS}
        ), new_conversation as (
            insert into conversations (id, workspace_id, channel_id, kind, agent_id,
                                       contact_number, is_test)
            select conversation_id, workspace_id, channel_id, 'voice', agent_id, from_number, $9
            from new_call
        )
        select * from new_call
        """,
        call_sid,
        workspace_id,
        channel_id,
        agent_id,
        source,
        status,
        from_number,
        to_number,
        is_test,
        connected,
    )
    if row is not None:
        return Call.from_row(row)
    existing = await conn.fetchrow(f"select {_COLUMNS} from calls where call_sid = $1", call_sid)
    assert existing is not None  # the conflicting insert committed before ours gave way
    return Call.from_row(existing, created=False)


async def get_call(conn: Connection, call_sid: str) -> Call | None:
    row = await conn.fetchrow(f"select {_COLUMNS} from calls where call_sid = $1", call_sid)
    return Call.from_row(row, created=False) if row else None


async def mark_connected(conn: Connection, call_sid: str, at: datetime | None = None) -> None:
    """The caller is connected (first answer); later calls keep the first time."""
    await conn.execute(
        """
        update calls set connected_at = coalesce(connected_at, $2, now()),
                         status = case when ended_at is null then 'in-progress' else status end,
                         updated_at = now()
        where call_sid = $1
        """,
        call_sid,
        at,
    )


async def touch(conn: Connection, call_sid: str) -> None:
    """Heartbeat of a live call, so a sweeper can tell a crashed worker's calls apart."""
    await conn.execute("update calls set updated_at = now() where call_sid = $1", call_sid)


async def finish_call(
    conn: Connection,
    call_sid: str,
    *,
    status: str,
    duration_seconds: int | None = None,
    ended_at: datetime | None = None,
) -> ChargeResult | None:
    """End the call once: close its conversation and charge whole minutes if it connected.

    Safe to repeat and to race: the first caller sets the end; the charge is keyed by CallSid.
    Without `duration_seconds`, the duration is connected_at -> ended_at.
    """
    async with conn.transaction():
        row = await conn.fetchrow(
            """
            update calls set
                status = $2,
                ended_at = coalesce(ended_at, $4, now()),
                duration_seconds = coalesce(
                    duration_seconds, $3,
                    case when connected_at is not null then greatest(0, ceil(extract(epoch from
                        coalesce(ended_at, $4, now()) - connected_at)))::int end),
                updated_at = now()
            where call_sid = $1
            returning id, workspace_id, conversation_id, connected_at, duration_seconds
            """,
            call_sid,
            status,
            duration_seconds,
            ended_at,
        )
        if row is None:
            return None
        await conversations.close_conversation(conn, row["conversation_id"])
        connected = row["connected_at"] is not None or (duration_seconds or 0) > 0
        minutes = billing.billable_minutes(row["duration_seconds"] or 0)
        if not connected or minutes == 0:
            return None
        return await billing.record_charge(
            conn,
            workspace_id=row["workspace_id"],
            kind=ChargeKind.VOICE_MINUTES,
            quantity=minutes,
            idempotency_key=billing.charge_key(ChargeKind.VOICE_MINUTES, call_sid),
            conversation_id=row["conversation_id"],
            reference=call_sid,
        )


@dataclass(frozen=True)
class StaleCallClosed:
    call_sid: str
    charge: ChargeResult | None


async def close_stale_calls(
    conn: Connection,
    *,
    stale_after_seconds: float,
    source: CallSource = "livekit",
    status: str = "completed",
) -> list[StaleCallClosed]:
    """Finish calls of `source` whose owner stopped heartbeating (a crashed worker's calls).

    The call is taken to have ended at its last heartbeat, so the caller is charged for the
    minutes the worker was alive for, once (finish_call's idempotency key).
    """
    rows = await conn.fetch(
        """
        select call_sid from calls
        where ended_at is null and source = $1
          and updated_at < now() - make_interval(secs => $2)
        order by updated_at limit 1000
        """,
        source,
        float(stale_after_seconds),
    )
    closed = []
    for candidate in rows:
        async with conn.transaction():
            # Re-check under the row lock: a heartbeat may have landed since, or another
            # sweeper may hold this call.
            row = await conn.fetchrow(
                """
                select call_sid, updated_at from calls
                where call_sid = $1 and ended_at is null
                  and updated_at < now() - make_interval(secs => $2)
                for update skip locked
                """,
                candidate["call_sid"],
                float(stale_after_seconds),
            )
            if row is None:
                continue
            charge = await finish_call(
                conn, row["call_sid"], status=status, ended_at=row["updated_at"]
            )
            closed.append(StaleCallClosed(row["call_sid"], charge))
    return closed
