"""The SMS path in domain terms: an inbound text arrives, a reply is queued or not, a sent
reply's delivery status is recorded and charged once.

Nothing here knows Twilio's field names or HTTP; the gateway translates at its edge.
Retries of one inbound message are decided by the atomic insert on its provider id: only
the delivery that stored the message may queue a reply.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from shared import billing, conversations, opt_outs, sms_outbox
from shared.billing import ChargeResult
from shared.e164 import normalize_e164, region_allowed
from shared.errors import InvalidPhoneNumber
from shared.models import ChannelKind, ChargeKind
from shared.opt_outs import Keyword
from shared.pg import Connection
from shared.routing import resolve_inbound, route_agent
from shared.sms_outbox import Claim
from shared.sms_segments import count_segments

logger = logging.getLogger("shared.sms")

# Statuses that mean the carrier took the message: only those are billed.
BILLABLE_STATUSES = frozenset({"sent", "delivered"})
_STATUS_RANK = {
    "accepted": 0, "scheduled": 0, "queued": 0, "sending": 1, "sent": 2,
    "delivered": 3, "undelivered": 3, "failed": 3, "canceled": 3, "read": 4,
}  # fmt: skip


@dataclass(frozen=True)
class InboundSms:
    message_sid: str
    from_number: str  # as Twilio gave it: E.164, a short code or an alphanumeric sender id
    to_number: str
    body: str
    num_segments: int | None = None
    opt_out_type: str | None = None  # set by Twilio's Advanced Opt-Out


class Outcome(StrEnum):
    UNKNOWN_NUMBER = "unknown_number"  # no active SMS channel: nothing stored, nothing spent
    REGION_REFUSED = "region_refused"  # our number's country is not enabled: refused
    DUPLICATE = "duplicate"  # a retry of a message already stored
    STORED = "stored"  # stored; no reply (see `reason`)
    REPLY_QUEUED = "reply_queued"


class NoReply(StrEnum):
    STOP_KEYWORD = "stop_keyword"
    START_KEYWORD = "start_keyword"
    HELP_KEYWORD = "help_keyword"  # Twilio's default opt-out handling answers HELP itself
    OPTED_OUT = "opted_out"
    SENDER_NOT_REPLYABLE = "sender_not_replyable"  # short code or alphanumeric sender
    CONTACT_REGION_NOT_ENABLED = "contact_region_not_enabled"
    NUMBER_REGION_NOT_ENABLED = "number_region_not_enabled"  # our number's country: refused
    NO_AGENT = "no_agent"
    SENDING_NOT_CONFIGURED = "sending_not_configured"
    PLAN_EXCLUDES_CHANNEL = "plan_excludes_channel"
    INFRA_ONLY = "infra_only"
    NO_CREDIT = "no_credit"


@dataclass(frozen=True)
class Received:
    outcome: Outcome
    reason: NoReply | None = None
    workspace_id: UUID | None = None
    conversation_id: UUID | None = None
    message_id: int | None = None
    reply_id: int | None = None  # a reply was queued
    reply: Claim | None = None  # ... and claimed for this caller to send


@functools.lru_cache(maxsize=4096)
def replyable_contact(from_number: str) -> str | None:
    """The sender as E.164 when we may text it back; None for short codes and sender ids.

    Cached: the same few contacts text again and again, and parsing is the costly part."""
    try:
        return normalize_e164(from_number)
    except InvalidPhoneNumber:
        return None


async def receive(
    conn: Connection, sms: InboundSms, *, can_send: bool, lease_seconds: float | None
) -> Received:
    """Store an inbound text on its conversation and queue the AI reply when one is due.

    With `lease_seconds` the queued reply is claimed for the caller; with None it is left
    for a reply worker (see sms_outbox.enqueue).

    One transaction: a crash leaves either nothing (Twilio's retry redoes it) or the message
    together with its pending reply.
    """
    target = await resolve_inbound(conn, ChannelKind.SMS, sms.to_number)
    if target is None:
        return Received(Outcome.UNKNOWN_NUMBER)
    if not target.region_allowed:
        return Received(
            Outcome.REGION_REFUSED,
            NoReply.NUMBER_REGION_NOT_ENABLED,
            workspace_id=target.workspace.id,
        )
    channel = target.channel
    contact = replyable_contact(sms.from_number)
    contact_number = contact or sms.from_number.strip()
    async with conn.transaction():
        agent = await route_agent(conn, channel, voice=False)
        conversation_id = await conversations.open_sms_conversation(
            conn,
            workspace_id=channel.workspace_id,
            channel_id=channel.id,
            contact_number=contact_number,
            agent_id=agent.id if agent else None,
        )
        message = await conversations.add_message(
            conn,
            conversation_id,
            direction="inbound",
            role="user",
            body=sms.body,
            provider_id=sms.message_sid,
            status="received",
            num_segments=sms.num_segments,
        )

        def outcome(
            kind: Outcome,
            reason: NoReply | None = None,
            reply_id: int | None = None,
            reply: Claim | None = None,
        ) -> Received:
            return Received(kind, reason, channel.workspace_id, message.conversation_id,
                            message.id, reply_id, reply)  # fmt: skip

        if not message.created:
            return outcome(Outcome.DUPLICATE)

        reason: NoReply | None = None
        if contact is None:
            reason = NoReply.SENDER_NOT_REPLYABLE
        else:
            reason = await _keyword_or_opt_out(conn, channel.phone_number, contact, sms)
        if reason is None and contact is not None:
            if not region_allowed(contact, target.workspace.enabled_calling_codes):
                reason = NoReply.CONTACT_REGION_NOT_ENABLED
        if reason is None:
            decision = billing.decide_spend(target.workspace, target.plan, ChannelKind.SMS)
            if not decision.allowed:
                assert decision.reason is not None
                reason = NoReply(decision.reason.value)
        if reason is None and agent is None:
            reason = NoReply.NO_AGENT
        if reason is None and not can_send:
            reason = NoReply.SENDING_NOT_CONFIGURED
        if reason is not None:
            return outcome(Outcome.STORED, reason)

        assert contact is not None and agent is not None
        reply_id, claim = await sms_outbox.enqueue(
            conn,
            workspace_id=channel.workspace_id,
            conversation_id=message.conversation_id,
            inbound_message_id=message.id,
            agent_id=agent.id,
            from_number=channel.phone_number,
            to_number=contact,
            lease_seconds=lease_seconds,
        )
        return outcome(Outcome.REPLY_QUEUED, reply_id=reply_id, reply=claim)


async def _keyword_or_opt_out(
    conn: Connection, our_number: str, contact: str, sms: InboundSms
) -> NoReply | None:
    """Record a STOP/START keyword; say why no reply is due, or None when one is."""
    opted_out = await opt_outs.is_opted_out(conn, our_number, contact)
    found = opt_outs.keyword_of(sms.body, sms.opt_out_type)
    if found is not None:
        kind, word = found
        if kind is Keyword.START and opt_outs.is_conditional_opt_in(word) and not opted_out:
            found = None  # a plain "yes" to the agent's question, not a re-subscription
    if found is None:
        return NoReply.OPTED_OUT if opted_out else None
    kind, word = found
    if kind is Keyword.STOP:
        await opt_outs.set_opted_out(conn, our_number, contact, opted_out=True, keyword=word)
        return NoReply.STOP_KEYWORD
    if kind is Keyword.START:
        await opt_outs.set_opted_out(conn, our_number, contact, opted_out=False, keyword=word)
        return NoReply.START_KEYWORD
    return NoReply.HELP_KEYWORD


async def reply_blocked(conn: Connection, reply: sms_outbox.OutboxReply) -> NoReply | None:
    """Checked again right before sending: the contact may have opted out meanwhile, or the
    workspace run out of credit."""
    if await opt_outs.is_opted_out(conn, reply.from_number, reply.to_number):
        return NoReply.OPTED_OUT
    decision = await billing.may_spend(conn, reply.workspace_id, ChannelKind.SMS)
    if not decision.allowed:
        assert decision.reason is not None
        return NoReply(decision.reason.value)
    return None


@dataclass(frozen=True)
class DeliveryStatus:
    message_sid: str
    status: str
    num_segments: int | None = None
    error_code: str | None = None
    reply_id: int | None = None  # from our status callback URL


@dataclass(frozen=True)
class Delivery:
    known: bool
    resolved_reply: bool = False  # a reply whose send outcome was unknown is now known sent
    charge: ChargeResult | None = None


async def record_delivery(conn: Connection, update: DeliveryStatus) -> Delivery:
    """Record a sent message's status; charge its segments once when the carrier took it."""
    resolved = False
    if update.reply_id is not None:
        reply = await sms_outbox.get(conn, update.reply_id)
        if reply is not None and reply.message_sid is None:
            # The send's answer was lost (crash or timeout): Twilio says it did go out.
            resolved = await sms_outbox.record_sent(
                conn,
                reply.id,
                update.message_sid,
                status=update.status,
                num_segments=update.num_segments,
            )
            if resolved:
                # Usual when the callback overtakes the sender's own write; news when the
                # send's outcome had been marked unknown.
                level = logging.WARNING if reply.status == "unknown" else logging.INFO
                logger.log(
                    level,
                    "sms.reply_resolved_by_callback",
                    extra={"reply_id": reply.id, "message_sid": update.message_sid,
                           "previous_status": reply.status},
                )  # fmt: skip
    async with conn.transaction():
        row = await conn.fetchrow(
            """
            select m.id, m.body, m.status, m.conversation_id, c.workspace_id
            from messages m join conversations c on c.id = m.conversation_id
            where m.provider_id = $1 and m.direction = 'outbound'
            for update of m
            """,
            update.message_sid,
        )
        if row is None:
            return Delivery(known=False)
        new_rank = _STATUS_RANK.get(update.status, -1)
        if new_rank >= _STATUS_RANK.get(row["status"] or "", -1):
            await conn.execute(
                "update messages set status = $2, num_segments = coalesce($3, num_segments)"
                " where id = $1",
                row["id"],
                update.status,
                update.num_segments,
            )
        charge = None
        if update.status in BILLABLE_STATUSES:
            quantity = update.num_segments or count_segments(row["body"])
            charge = await billing.record_charge(
                conn,
                workspace_id=row["workspace_id"],
                kind=ChargeKind.OUTBOUND_MESSAGES,
                quantity=quantity,
                idempotency_key=f"outbound_messages:{update.message_sid}",
                conversation_id=row["conversation_id"],
                reference=update.message_sid,
            )
        return Delivery(known=True, resolved_reply=resolved, charge=charge)
