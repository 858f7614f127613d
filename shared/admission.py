"""Admission: may this contact get an AI answer on this channel now? One rule, one refusal type.

Every path asks here: the SMS intake (before and after its batched store), the reply sender
right before it texts, the TwiML loop when a call rings, and the worker for SIP calls and
playground sessions. A refusal costs nothing: no AI provider is touched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from shared import agents, calls, conversations, opt_outs, routing, workspaces
from shared.e164 import region_allowed
from shared.errors import NotFound
from shared.models import Agent, BillingMode, ChannelKind, Plan, Workspace
from shared.pg import Connection
from shared.routing import InboundTarget
from shared.sms_outbox import OutboxReply

logger = logging.getLogger("shared.admission")


class Refusal(StrEnum):
    UNKNOWN_NUMBER = "unknown_number"  # no active channel for the number: nothing stored
    NUMBER_REGION_NOT_ENABLED = "number_region_not_enabled"  # our number's country
    SENDER_NOT_REPLYABLE = "sender_not_replyable"  # short code or alphanumeric sender
    OPTED_OUT = "opted_out"
    CONTACT_REGION_NOT_ENABLED = "contact_region_not_enabled"
    PLAN_EXCLUDES_CHANNEL = "plan_excludes_channel"
    INFRA_ONLY = "infra_only"
    NO_CREDIT = "no_credit"
    NO_AGENT = "no_agent"  # no active agent able to take the channel's modality
    UNKNOWN_AGENT = "unknown_agent"  # a playground session named no agent we know


SPEND_REFUSALS = frozenset({Refusal.PLAN_EXCLUDES_CHANNEL, Refusal.INFRA_ONLY, Refusal.NO_CREDIT})


@dataclass(frozen=True)
class Contact:
    """Who we would answer by text, as far as it is known when the rule runs."""

    number: str | None  # E.164 when we may text it back; None for short codes and sender ids
    opted_out: bool | None = None  # None: not known yet (the SMS intake learns it at the store)


@dataclass(frozen=True)
class SpendDecision:
    allowed: bool
    reason: Refusal | None = None


def decide_spend(workspace: Workspace, plan: Plan, kind: ChannelKind) -> SpendDecision:
    """AI spend is allowed when the plan includes the channel, billing is live, credit is left."""
    if not plan.includes(kind):
        return SpendDecision(False, Refusal.PLAN_EXCLUDES_CHANNEL)
    if workspace.billing_mode != BillingMode.LIVE:
        return SpendDecision(False, Refusal.INFRA_ONLY)
    if workspace.credit_balance_minor <= 0:
        return SpendDecision(False, Refusal.NO_CREDIT)
    return SpendDecision(True)


async def may_spend(conn: Connection, workspace_id: UUID, kind: ChannelKind) -> SpendDecision:
    workspace, plan = await workspaces.get_workspace_and_plan(conn, workspace_id)
    return decide_spend(workspace, plan, kind)


def refusal(
    target: InboundTarget | None,
    kind: ChannelKind,
    *,
    contact: Contact | None = None,
    agent_found: bool | None = None,
) -> Refusal | None:
    """The first reason not to answer, in the one order every path reports; None: answer.

    `contact` is given where we answer by text (the texting back is what costs by the
    contact's country and what an opt-out forbids); `agent_found` None means not known yet.
    """
    if target is None:
        return Refusal.UNKNOWN_NUMBER
    if not target.region_allowed:
        return Refusal.NUMBER_REGION_NOT_ENABLED
    if contact is not None:
        if contact.number is None:
            return Refusal.SENDER_NOT_REPLYABLE
        if contact.opted_out:
            return Refusal.OPTED_OUT
        if not region_allowed(contact.number, target.workspace.enabled_calling_codes):
            return Refusal.CONTACT_REGION_NOT_ENABLED
    spend = decide_spend(target.workspace, target.plan, kind)
    if spend.reason is not None:
        return spend.reason
    if agent_found is False:
        return Refusal.NO_AGENT
    return None


async def reply_refusal(conn: Connection, reply: OutboxReply) -> Refusal | None:
    """Checked again right before a queued reply is sent: the contact may have opted out
    meanwhile, or the workspace run out of credit."""
    if await opt_outs.is_opted_out(conn, reply.from_number, reply.to_number):
        return Refusal.OPTED_OUT
    return (await may_spend(conn, reply.workspace_id, ChannelKind.SMS)).reason


@dataclass(frozen=True)
class CallDecision:
    """A ringing call decided: where it lands, who answers, or why nobody does."""

    target: InboundTarget | None
    agent: Agent | None
    refusal: Refusal | None


async def decide_call(conn: Connection, to_number: str | None) -> CallDecision:
    """Route a phone call to our number (TwiML loop or SIP) and decide whether AI answers it."""
    target = (
        await routing.resolve_inbound(conn, ChannelKind.VOICE, to_number) if to_number else None
    )
    agent = None
    if target is not None and target.region_allowed:
        agent = await routing.route_agent(conn, target.channel, voice=True)
    refused = refusal(target, ChannelKind.VOICE, agent_found=agent is not None)
    return CallDecision(target, agent, refused)


@dataclass(frozen=True)
class Admitted:
    """A LiveKit session that gets an AI agent, with its conversation (and call) opened."""

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


async def admit_sip_call(
    conn: Connection,
    *,
    to_number: str | None,
    from_number: str | None,
    call_sid: str,
    joined_at: datetime,
) -> Admission:
    """A phone call reaching LiveKit: its call row (shared with the gateway when it bridged
    the call) and conversation opened, or a refusal without spending."""
    decision = await decide_call(conn, to_number)
    if decision.refusal is not None:
        return Refused(decision.refusal)
    target, agent = decision.target, decision.agent
    assert target is not None and agent is not None
    call = await calls.open_call(
        conn,
        call_sid=call_sid,
        workspace_id=target.workspace.id,
        channel_id=target.channel.id,
        agent_id=agent.id,
        source="livekit",
        from_number=from_number,
        to_number=target.channel.phone_number,
        status="in-progress",
    )
    await calls.mark_connected(conn, call_sid, joined_at)
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
    if agent is None:
        return Refused(Refusal.UNKNOWN_AGENT)
    if not agent.active or not agent.has_voice:
        return Refused(Refusal.NO_AGENT)
    workspace, plan = await workspaces.get_workspace_and_plan(conn, agent.workspace_id)
    spend = decide_spend(workspace, plan, ChannelKind.VOICE)
    if spend.reason is not None:
        return Refused(spend.reason)
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
