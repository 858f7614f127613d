"""Agent routing: channel -> workspace -> agent, the one function every path uses."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg

from shared.e164 import normalize_e164, region_allowed
from shared.errors import InvalidPhoneNumber
from shared.models import Agent, Channel, ChannelKind, Plan, Workspace
from shared.pg import Connection

_AGENT_COLUMNS = (
    "a.id, a.workspace_id, a.name, a.instructions, a.greeting, a.modality, a.language,"
    " a.voice, a.chat_model, a.active, a.max_call_seconds, a.handoff_number, a.created_at,"
    " a.handoff_digit, a.handoff_mode, a.idle_prompt_seconds, a.idle_goodbye_seconds"
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
    return (await resolve_inbound_many(conn, kind, [to_number])).get(to_number)


async def resolve_inbound_many(
    conn: Connection, kind: ChannelKind, to_numbers: Iterable[str]
) -> dict[str, InboundTarget]:
    """resolve_inbound for several numbers in one round trip, keyed by the numbers as given;
    an unknown or disconnected number is absent."""
    e164_of: dict[str, str] = {}
    for number in to_numbers:
        try:
            e164_of[number] = normalize_e164(number)
        except InvalidPhoneNumber:
            pass
    if not e164_of:
        return {}
    # One round trip: every webhook starts here.
    rows = await conn.fetch(
        """
        select c.id, c.workspace_id, c.kind, c.phone_number, c.active, c.created_at,
               c.updated_at,
               w.name as w_name, w.plan as w_plan, w.billing_mode as w_billing_mode,
               w.credit_balance_minor as w_credit_balance_minor,
               w.enabled_calling_codes as w_enabled_calling_codes, w.created_at as w_created_at,
               p.name as p_name, p.includes_sms as p_includes_sms,
               p.includes_voice as p_includes_voice,
               p.sms_segment_price_minor as p_sms_segment_price_minor,
               p.voice_minute_price_minor as p_voice_minute_price_minor,
               p.currency as p_currency
        from channels c
        join workspaces w on w.id = c.workspace_id
        join plans p on p.code = w.plan
        where c.kind = $1 and c.phone_number = any($2::text[]) and c.active
        """,
        kind.value,
        list(set(e164_of.values())),
    )
    by_e164 = {row["phone_number"]: _target(row) for row in rows}
    return {number: by_e164[e164] for number, e164 in e164_of.items() if e164 in by_e164}


def _target(row: asyncpg.Record) -> InboundTarget:
    channel = Channel.from_row(row)
    workspace = Workspace(
        id=row["workspace_id"],
        name=row["w_name"],
        plan=row["w_plan"],
        billing_mode=row["w_billing_mode"],
        credit_balance_minor=row["w_credit_balance_minor"],
        enabled_calling_codes=row["w_enabled_calling_codes"],
        created_at=row["w_created_at"],
    )
    plan = Plan(
        code=row["w_plan"],
        name=row["p_name"],
        includes_sms=row["p_includes_sms"],
        includes_voice=row["p_includes_voice"],
        sms_segment_price_minor=row["p_sms_segment_price_minor"],
        voice_minute_price_minor=row["p_voice_minute_price_minor"],
        currency=row["p_currency"],
    )
    allowed = region_allowed(channel.phone_number, workspace.enabled_calling_codes)
    return InboundTarget(channel=channel, workspace=workspace, plan=plan, region_allowed=allowed)


def agent_choice_sql(channel: str, workspace: str, modalities: str, columns: str) -> str:
    """The routing rule as SQL, for statements that route in the same round trip.

    The agent bound to the channel when it is active and fit, else the workspace's oldest
    active fit one. The binding is only a preference in the ordering: an inactive or unfit
    bound agent simply loses to the oldest fit one (it is always of the same workspace).
    The arguments are the statement's placeholders ("$1", ...) and the columns to select.
    """
    return f"""
        select {columns} from agents a
        left join agent_channels ac on ac.agent_id = a.id and ac.channel_id = {channel}
        where a.workspace_id = {workspace} and a.active and a.modality = any({modalities}::text[])
        order by (ac.channel_id is not null) desc, a.created_at, a.id
        limit 1
    """


def agent_modalities(*, voice: bool) -> list[str]:
    """Voice routes only to agents whose modality includes voice; SMS to text-capable ones."""
    return _VOICE_MODALITIES if voice else _TEXT_MODALITIES


async def route_agent(conn: Connection, channel: Channel, *, voice: bool) -> Agent | None:
    """The agent that answers this channel (see agent_choice_sql), or None."""
    row = await conn.fetchrow(
        agent_choice_sql("$1", "$2", "$3", _AGENT_COLUMNS),
        channel.id,
        channel.workspace_id,
        agent_modalities(voice=voice),
    )
    return Agent.from_row(row) if row else None
