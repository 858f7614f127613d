"""What the console shows a workspace's members: its conversations, one conversation's turns,
calls, recordings and charges, and its billing. Read-only; every query is scoped by the
workspace, so a conversation id of another workspace is simply not found.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from shared.errors import NotFound
from shared.models import Role
from shared.pg import Connection
from shared.recordings import Recording, conversation_recordings

_MAX_MESSAGES = 2000  # a page, not an export: longer threads show their latest turns


@dataclass(frozen=True)
class MemberWorkspace:
    id: UUID
    name: str
    role: Role


@dataclass(frozen=True)
class ConversationRow:
    id: UUID
    kind: str  # sms | voice | playground
    contact_number: str | None
    status: str
    is_test: bool
    handed_off: bool
    opened_at: datetime
    last_message_at: datetime | None
    agent_name: str | None
    message_count: int
    duration_seconds: int | None  # calls only: finished calls' own, a live one's so far
    charges_minor: int
    call_live: bool


@dataclass(frozen=True)
class Turn:
    id: int
    direction: str
    role: str
    body: str
    status: str | None
    interrupted: bool
    created_at: datetime


@dataclass(frozen=True)
class CallRow:
    call_sid: str
    source: str
    status: str
    from_number: str | None
    to_number: str | None
    connected_at: datetime | None
    ended_at: datetime | None
    duration_seconds: int | None


@dataclass(frozen=True)
class ChargeRow:
    id: UUID
    kind: str
    quantity: int
    unit_price_minor: int
    amount_minor: int
    conversation_id: UUID | None
    reference: str | None
    created_at: datetime


@dataclass(frozen=True)
class ConversationView:
    conversation: ConversationRow
    channel_number: str | None
    turns: list[Turn]
    calls: list[CallRow]
    recordings: list[Recording]
    charges: list[ChargeRow]


@dataclass(frozen=True)
class BillingView:
    plan_name: str
    currency: str
    billing_mode: str
    credit_balance_minor: int
    charges: list[ChargeRow]  # newest first
    charges_total_minor: int


async def member_workspaces(conn: Connection, user_id: str) -> list[MemberWorkspace]:
    """The workspaces `user_id` belongs to, oldest first."""
    rows = await conn.fetch(
        """
        select w.id, w.name, m.role from workspace_members m
        join workspaces w on w.id = m.workspace_id
        where m.user_id = $1 order by w.created_at, w.id
        """,
        user_id,
    )
    return [MemberWorkspace(r["id"], r["name"], Role(r["role"])) for r in rows]


_ROW_SELECT = """
    select c.id, c.kind, c.contact_number, c.status, c.is_test, c.handed_off, c.opened_at,
           c.last_message_at, a.name as agent_name,
           (select count(*) from messages m where m.conversation_id = c.id) as message_count,
           (select sum(coalesce(k.duration_seconds, extract(epoch from
                       coalesce(k.ended_at, now()) - k.connected_at)::int))::int
            from calls k where k.conversation_id = c.id) as duration_seconds,
           (select coalesce(sum(ch.amount_minor), 0)::bigint from charges ch
            where ch.conversation_id = c.id) as charges_minor,
           exists (select 1 from calls k where k.conversation_id = c.id
                   and k.ended_at is null) as call_live
    from conversations c left join agents a on a.id = c.agent_id
"""


def _conversation_row(row: asyncpg.Record) -> ConversationRow:
    return ConversationRow(**dict(row))


async def conversation_rows(
    conn: Connection, workspace_id: UUID, *, limit: int = 100
) -> list[ConversationRow]:
    """The workspace's latest conversations, newest first (the inbox)."""
    rows = await conn.fetch(
        _ROW_SELECT + " where c.workspace_id = $1 order by c.opened_at desc, c.id limit $2",
        workspace_id,
        limit,
    )
    return [_conversation_row(r) for r in rows]


async def conversation_view(
    conn: Connection, workspace_id: UUID, conversation_id: UUID
) -> ConversationView:
    """One conversation of the workspace; NotFound for any other (or none)."""
    row = await conn.fetchrow(
        _ROW_SELECT + " where c.workspace_id = $1 and c.id = $2", workspace_id, conversation_id
    )
    if row is None:
        raise NotFound(f"conversation {conversation_id} not found")
    channel_number: str | None = await conn.fetchval(
        "select ch.phone_number from conversations c join channels ch on ch.id = c.channel_id"
        " where c.id = $1",
        conversation_id,
    )
    turns = await conn.fetch(
        """
        select * from (
            select id, direction, role, body, status, interrupted, created_at from messages
            where conversation_id = $1 and role <> 'system' order by id desc limit $2
        ) latest order by id
        """,
        conversation_id,
        _MAX_MESSAGES,
    )
    calls = await conn.fetch(
        """
        select call_sid, source, status, from_number, to_number, connected_at, ended_at,
               duration_seconds
        from calls where conversation_id = $1 order by created_at, id
        """,
        conversation_id,
    )
    charges = await conn.fetch(
        """
        select id, kind, quantity, unit_price_minor, amount_minor, conversation_id, reference,
               created_at
        from charges where workspace_id = $1 and conversation_id = $2 order by created_at, id
        """,
        workspace_id,
        conversation_id,
    )
    return ConversationView(
        conversation=_conversation_row(row),
        channel_number=channel_number,
        turns=[Turn(**dict(t)) for t in turns],
        calls=[CallRow(**dict(c)) for c in calls],
        recordings=await conversation_recordings(conn, conversation_id),
        charges=[ChargeRow(**dict(c)) for c in charges],
    )


async def billing_view(conn: Connection, workspace_id: UUID, *, limit: int = 100) -> BillingView:
    """The balance, the billing mode and the latest charges (newest first)."""
    workspace = await conn.fetchrow(
        """
        select w.billing_mode, w.credit_balance_minor, p.name as plan_name, p.currency,
               (select coalesce(sum(amount_minor), 0)::bigint from charges
                where workspace_id = w.id) as charges_total_minor
        from workspaces w join plans p on p.code = w.plan where w.id = $1
        """,
        workspace_id,
    )
    if workspace is None:
        raise NotFound(f"workspace {workspace_id} not found")
    charges = await conn.fetch(
        """
        select id, kind, quantity, unit_price_minor, amount_minor, conversation_id, reference,
               created_at
        from charges where workspace_id = $1 order by created_at desc, id desc limit $2
        """,
        workspace_id,
        limit,
    )
    return BillingView(
        plan_name=workspace["plan_name"],
        currency=workspace["currency"],
        billing_mode=workspace["billing_mode"],
        credit_balance_minor=workspace["credit_balance_minor"],
        charges=[ChargeRow(**dict(c)) for c in charges],
        charges_total_minor=int(workspace["charges_total_minor"]),
    )
