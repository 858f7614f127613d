"""May this voice room get an AI agent? The same routing and billing checks as the TwiML path.

Pure domain calls on one connection: channel by the number dialled, region, spend, a
voice-capable agent; then the call (one row per CallSid, shared with the gateway when it
bridged the call) and its conversation. A refusal costs nothing: no AI provider is touched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from shared import agents, billing, calls, conversations, routing, workspaces
from shared.errors import NotFound
from shared.models import Agent, ChannelKind
from shared.pg import Connection
from worker.caller import Caller

logger = logging.getLogger("worker.admission")


class Refusal(StrEnum):
    UNKNOWN_NUMBER = "unknown_number"
    REGION_NOT_ENABLED = "region_not_enabled"
    PLAN_EXCLUDES_CHANNEL = "plan_excludes_channel"
    INFRA_ONLY = "infra_only"
    NO_CREDIT = "no_credit"
    NO_VOICE_AGENT = "no_voice_agent"
    UNKNOWN_AGENT = "unknown_agent"


@dataclass(frozen=True)
class Admitted:
    agent: Agent
    workspace_id: UUID
    conversation_id: UUID
    call_sid: str | None  # None for playground sessions (no phone call, nothing to charge)
    call_id: UUID | None
    is_test: bool


@dataclass(frozen=True)
class Refused:
    reason: Refusal


Admission = Admitted | Refused


async def admit_sip_caller(
    conn: Connection, caller: Caller, *, fallback_call_sid: str
) -> Admission:
    """Route a phone call to its workspace's voice agent, or refuse without spending."""
    target = (
        await routing.resolve_inbound(conn, ChannelKind.VOICE, caller.called_number)
        if caller.called_number
        else None
    )
    if target is None:
        return Refused(Refusal.UNKNOWN_NUMBER)
    if not target.region_allowed:
        return Refused(Refusal.REGION_NOT_ENABLED)
    decision = billing.decide_spend(target.workspace, target.plan, ChannelKind.VOICE)
    if not decision.allowed:
        assert decision.reason is not None
        return Refused(Refusal(decision.reason.value))
    agent = await routing.route_agent(conn, target.channel, voice=True)
    if agent is None:
        return Refused(Refusal.NO_VOICE_AGENT)
    call_sid = caller.call_sid or fallback_call_sid
    call = await calls.open_call(
        conn,
        call_sid=call_sid,
        workspace_id=target.workspace.id,
        channel_id=target.channel.id,
        agent_id=agent.id,
        source="livekit",
        from_number=caller.caller_number,
        to_number=target.channel.phone_number,
        status="in-progress",
    )
    await calls.mark_connected(conn, call_sid, caller.joined_at)
    logger.info(
        "call.admitted",
        extra={
            "workspace": str(target.workspace.id),
            "conversation": str(call.conversation_id),
            "call_sid": call_sid,
            "bridged": not call.created,
        },
    )
    return Admitted(
        agent=agent,
        workspace_id=target.workspace.id,
        conversation_id=call.conversation_id,
        call_sid=call_sid,
        call_id=call.id,
        is_test=False,
    )


async def admit_playground(conn: Connection, agent_id: str | None) -> Admission:
    """A playground session talks to the named agent, recorded as a test conversation."""
    try:
        agent = await agents.get_agent(conn, UUID(agent_id)) if agent_id else None
    except (ValueError, NotFound):
        agent = None
    if agent is None or not agent.active or not agent.has_voice:
        return Refused(Refusal.UNKNOWN_AGENT if agent is None else Refusal.NO_VOICE_AGENT)
    workspace = await workspaces.get_workspace(conn, agent.workspace_id)
    plan = await workspaces.get_plan(conn, workspace.plan)
    decision = billing.decide_spend(workspace, plan, ChannelKind.VOICE)
    if not decision.allowed:
        assert decision.reason is not None
        return Refused(Refusal(decision.reason.value))
    conversation_id = await conversations.open_conversation(
        conn,
        workspace_id=workspace.id,
        kind="playground",
        channel_id=None,
        contact_number=None,
        agent_id=agent.id,
        is_test=True,
    )
    return Admitted(
        agent=agent,
        workspace_id=workspace.id,
        conversation_id=conversation_id,
        call_sid=None,
        call_id=None,
        is_test=True,
    )
