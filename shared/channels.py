"""Channels: a Twilio number connected to a workspace for SMS or voice."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from shared import agents, workspaces
from shared.e164 import normalize_e164
from shared.errors import InvalidInput, NotFound, NumberInUse, PlanExcludesChannel
from shared.models import Channel, ChannelKind
from shared.pg import Connection

_COLUMNS = "id, workspace_id, kind, phone_number, active, created_at, updated_at"


def _kind(kind: str) -> ChannelKind:
    try:
        return ChannelKind(kind)
    except ValueError:
        raise InvalidInput("channel kind must be 'sms' or 'voice'") from None


async def _check_agent(conn: Connection, workspace_id: UUID, agent_id: UUID) -> None:
    agent = await agents.get_agent(conn, agent_id)
    if agent.workspace_id != workspace_id:
        raise NotFound(f"agent {agent_id} not found in this workspace")


async def _bind(conn: Connection, channel_id: UUID, agent_id: UUID | None) -> None:
    if agent_id is None:
        await conn.execute("delete from agent_channels where channel_id = $1", channel_id)
        return
    await conn.execute(
        """
        insert into agent_channels (channel_id, agent_id) values ($1, $2)
        on conflict (channel_id) do update set agent_id = excluded.agent_id, created_at = now()
        """,
        channel_id,
        agent_id,
    )


async def connect_channel(
    conn: Connection,
    workspace_id: UUID,
    kind: str,
    phone_number: str,
    agent_id: UUID | None = None,
) -> Channel:
    """Connect a number; reconnecting a number the workspace already has is idempotent."""
    channel_kind = _kind(kind)
    e164 = normalize_e164(phone_number)
    async with conn.transaction():
        workspace = await workspaces.get_workspace(conn, workspace_id)
        plan = await workspaces.get_plan(conn, workspace.plan)
        if not plan.includes(channel_kind):
            raise PlanExcludesChannel(
                f"the {plan.name} plan does not include {channel_kind.value}; upgrade to Starter"
            )
        if agent_id is not None:
            await _check_agent(conn, workspace_id, agent_id)
        existing = await conn.fetchrow(
            f"select {_COLUMNS} from channels where kind = $1 and phone_number = $2 and active",
            channel_kind.value,
            e164,
        )
        if existing is not None and existing["workspace_id"] != workspace_id:
            raise NumberInUse(f"{e164} is already connected for {channel_kind.value} elsewhere")
        if existing is not None:
            channel = Channel.from_row(existing)
        else:
            try:
                async with conn.transaction():
                    row = await conn.fetchrow(
                        f"insert into channels (workspace_id, kind, phone_number)"
                        f" values ($1, $2, $3) returning {_COLUMNS}",
                        workspace_id,
                        channel_kind.value,
                        e164,
                    )
            except asyncpg.UniqueViolationError:
                raise NumberInUse(
                    f"{e164} is already connected for {channel_kind.value} elsewhere"
                ) from None
            channel = Channel.from_row(row)
        if agent_id is not None:
            await _bind(conn, channel.id, agent_id)
        return channel


async def update_channel(
    conn: Connection,
    channel_id: UUID,
    *,
    phone_number: str | None = None,
    agent_id: UUID | None = None,
    unbind_agent: bool = False,
) -> Channel:
    """Change the number and/or the bound agent; routing follows on the next webhook."""
    async with conn.transaction():
        channel = await get_channel(conn, channel_id)
        if phone_number is not None:
            e164 = normalize_e164(phone_number)
            try:
                async with conn.transaction():
                    row = await conn.fetchrow(
                        f"update channels set phone_number = $2, updated_at = now()"
                        f" where id = $1 returning {_COLUMNS}",
                        channel_id,
                        e164,
                    )
            except asyncpg.UniqueViolationError:
                raise NumberInUse(f"{e164} is already connected for {channel.kind}") from None
            channel = Channel.from_row(row)
        if agent_id is not None:
            await _check_agent(conn, channel.workspace_id, agent_id)
            await _bind(conn, channel_id, agent_id)
        elif unbind_agent:
            await _bind(conn, channel_id, None)
        return channel


async def disconnect_channel(conn: Connection, channel_id: UUID) -> Channel:
    """Deactivate: later webhooks for the number find no channel and spend nothing."""
    row = await conn.fetchrow(
        f"update channels set active = false, updated_at = now() where id = $1"
        f" returning {_COLUMNS}",
        channel_id,
    )
    if row is None:
        raise NotFound(f"channel {channel_id} not found")
    return Channel.from_row(row)


async def get_channel(conn: Connection, channel_id: UUID) -> Channel:
    row = await conn.fetchrow(f"select {_COLUMNS} from channels where id = $1", channel_id)
    if row is None:
        raise NotFound(f"channel {channel_id} not found")
    return Channel.from_row(row)


async def list_channels(
    conn: Connection, workspace_id: UUID, *, active_only: bool = False
) -> list[Channel]:
    rows = await conn.fetch(
        f"select {_COLUMNS} from channels where workspace_id = $1 and (active or not $2)"
        " order by created_at, id",
        workspace_id,
        active_only,
    )
    return [Channel.from_row(r) for r in rows]


async def bound_agent_id(conn: Connection, channel_id: UUID) -> UUID | None:
    value: UUID | None = await conn.fetchval(
        "select agent_id from agent_channels where channel_id = $1", channel_id
    )
    return value


async def voice_numbers(conn: Connection) -> list[str]:
    """Every number connected for voice right now, sorted (E.164): the LiveKit trunk's numbers."""
    rows = await conn.fetch(
        "select distinct phone_number from channels where kind = 'voice' and active"
        " order by phone_number"
    )
    return [r["phone_number"] for r in rows]
