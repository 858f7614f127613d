"""Agent routing: channel -> workspace -> agent, the one function every path uses."""

from __future__ import annotations

from dataclasses import dataclass

from shared import channels, workspaces
from shared.e164 import normalize_e164, region_allowed
from shared.errors import InvalidPhoneNumber
from shared.models import Agent, Channel, ChannelKind, Plan, Workspace
from shared.pg import Connection

_AGENT_COLUMNS = (
    "a.id, a.workspace_id, a.name, a.instructions, a.greeting, a.modality, a.language,"
    " a.voice, a.chat_model, a.active, a.max_call_seconds, a.handoff_number, a.created_at"
)
_VOICE_MODALITIES = ["voice", "text_voice"]
_TEXT_MODALITIES = ["text", "text_voice"]


@dataclass(frozen=True)
class InboundTarget:
    """Where an inbound SMS or call to one of our numbers lands."""

    channel: Channel
    workspace: Workspace
    plan: Plan
    region_allowed: bool


async def resolve_inbound(
    conn: Connection, kind: ChannelKind, to_number: str
) -> InboundTarget | None:
    """The active channel for the number dialled or texted, or None (unknown/disconnected)."""
    try:
        e164 = normalize_e164(to_number)
    except InvalidPhoneNumber:
        return None
    channel = await channels.find_active_channel(conn, kind, e164)
    if channel is None:
        return None
    workspace = await workspaces.get_workspace(conn, channel.workspace_id)
    plan = await workspaces.get_plan(conn, workspace.plan)
    allowed = region_allowed(channel.phone_number, workspace.enabled_calling_codes)
    return InboundTarget(channel=channel, workspace=workspace, plan=plan, region_allowed=allowed)


async def route_agent(conn: Connection, channel: Channel, *, voice: bool) -> Agent | None:
    """The agent bound to the channel when set and active, else the workspace's oldest active one.

    Voice routes only to agents whose modality includes voice; SMS only to text-capable ones.
    """
    modalities = _VOICE_MODALITIES if voice else _TEXT_MODALITIES
    row = await conn.fetchrow(
        f"""
        select {_AGENT_COLUMNS} from agent_channels ac join agents a on a.id = ac.agent_id
        where ac.channel_id = $1 and a.active and a.modality = any($2::text[])
        """,
        channel.id,
        modalities,
    )
    if row is None:
        row = await conn.fetchrow(
            f"""
            select {_AGENT_COLUMNS} from agents a
            where a.workspace_id = $1 and a.active and a.modality = any($2::text[])
            order by a.created_at, a.id limit 1
            """,
            channel.workspace_id,
            modalities,
        )
    return Agent.from_row(row) if row else None
