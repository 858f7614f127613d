"""The SMS path in domain terms: an inbound text arrives, a reply is queued or not, a sent
reply's delivery status is recorded and charged once.

Nothing here knows Twilio's field names or HTTP; the gateway translates at its edge.
Retries of one inbound message are decided by the atomic insert on its provider id: only
the delivery that stored the message may queue a reply.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from uuid import UUID

from shared import admission, billing, opt_outs, sms_outbox
from shared.admission import Refusal
from shared.billing import ChargeResult
from shared.e164 import normalize_e164
from shared.errors import InvalidPhoneNumber
from shared.models import ChannelKind, ChargeKind
from shared.opt_outs import Keyword
from shared.pg import Connection
from shared.routing import (
    InboundTarget,
    agent_choice_sql,
    agent_modalities,
    resolve_inbound_many,
)
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
    """Why a stored text gets no AI reply although admission would allow one."""

    STOP_KEYWORD = "stop_keyword"
    START_KEYWORD = "start_keyword"
    HELP_KEYWORD = "help_keyword"  # Twilio's default opt-out handling answers HELP itself
    SENDING_NOT_CONFIGURED = "sending_not_configured"


@dataclass(frozen=True)
class Received:
    outcome: Outcome
    reason: Refusal | NoReply | None = None
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


_KEYWORD_REASONS = {
    Keyword.STOP: NoReply.STOP_KEYWORD,
    Keyword.START: NoReply.START_KEYWORD,
    Keyword.HELP: NoReply.HELP_KEYWORD,
}


@dataclass(frozen=True)
class _Plan:
    """One ordinary inbound text, decided as far as it can be before the store."""

    target: InboundTarget
    sms: InboundSms
    contact: str | None  # E.164 when we may text it back
    reply_due: bool  # admission allows a reply as far as it is known before the store

    @property
    def contact_number(self) -> str:  # as the conversation records the contact
        return self.contact or self.sms.from_number.strip()


@dataclass(frozen=True)
class _Stored:
    conversation_id: UUID
    message_id: int | None  # None: a retry of a message already stored
    agent_id: UUID | None
    opted_out: bool
    reply: tuple[int, Claim | None] | None


# The store-and-queue of many texts as one statement, atomic without a transaction: per
# text the contact's open conversation (an upsert that also sees one a concurrent delivery
# just opened), the message once per provider id, and the pending reply only when this
# statement stored the message, the reply is due, an agent answers and the contact has not
# opted out. Two texts of one conversation cannot share a statement (an upsert may touch a
# row once): _store_many runs them in successive ones. The NOTIFY only wakes the reply
# workers (they claim whatever is due), so its payload is constant: Postgres folds a
# transaction's identical notifications into one, a single queue entry per statement.
_STORE_SQL = f"""
with input as (
    select * from unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[],
                         $6::int4[], $7::text[], $8::bool[])
        with ordinality as t(channel_id, workspace_id, contact_number, body, provider_id,
                             num_segments, our_number, reply_due, ord)
),
agent as (
    select ch.channel_id,
           ({agent_choice_sql("ch.channel_id", "ch.workspace_id", "$9", "a.id")}) as id
    from (select distinct channel_id, workspace_id from input) as ch
),
conv as (
    insert into conversations (workspace_id, channel_id, kind, agent_id, contact_number,
                               last_message_at)
    select i.workspace_id, i.channel_id, 'sms', agent.id, i.contact_number, clock_timestamp()
    from input i join agent using (channel_id)
    order by i.ord
    on conflict (channel_id, contact_number) where status = 'open' and kind = 'sms'
    do update set last_message_at = clock_timestamp()
    returning id, channel_id, contact_number
),
msg as (
    insert into messages (conversation_id, direction, role, body, provider_id, status,
                          num_segments)
    select conv.id, 'inbound', 'user', i.body, i.provider_id, 'received', i.num_segments
    from input i join conv using (channel_id, contact_number)
    order by i.ord
    on conflict (provider_id) do nothing
    returning id, conversation_id, provider_id
),
opted as (
    select i.ord from input i
    join sms_opt_outs o on o.our_number = i.our_number and o.contact_number = i.contact_number
    where o.opted_out
),
reply as (
    insert into sms_replies (workspace_id, conversation_id, inbound_message_id, agent_id,
                             from_number, to_number, claim, lease_until)
    select i.workspace_id, msg.conversation_id, msg.id, agent.id, i.our_number,
           i.contact_number, case when $10::float8 is not null then gen_random_uuid() end,
           now() + make_interval(secs => $10::float8)
    from input i join msg using (provider_id) join agent using (channel_id)
    where i.reply_due and agent.id is not null and i.ord not in (select ord from opted)
    order by i.ord
    returning id, claim, inbound_message_id
)
select conv.id as conversation_id, msg.id as message_id, agent.id as agent_id,
       i.ord in (select ord from opted) as opted_out, reply.id as reply_id, reply.claim,
       case when reply.id is not null and $10::float8 is null
            then pg_notify($11, '') end as notified
from input i
join agent using (channel_id)
join conv using (channel_id, contact_number)
left join msg using (provider_id)
left join reply on reply.inbound_message_id = msg.id
order by i.ord
"""


def _statement_rounds(plans: Sequence[_Plan]) -> list[list[int]]:
    """Indexes of `plans` in statements that each touch a conversation and a provider id
    at most once, in arrival order; each statement's texts sorted by conversation so that
    concurrent statements lock conversations in one order."""
    used: list[set[object]] = []  # per statement: the conversations and ids it touches
    rounds: list[list[int]] = []
    for index, plan in enumerate(plans):
        keys = {(plan.target.channel.id, plan.contact_number), plan.sms.message_sid}
        n = next((n for n, seen in enumerate(used) if seen.isdisjoint(keys)), len(used))
        if n == len(used):
            used.append(set())
            rounds.append([])
        used[n] |= keys
        rounds[n].append(index)

    def conversation(i: int) -> tuple[str, str]:
        return str(plans[i].target.channel.id), plans[i].contact_number

    return [sorted(members, key=conversation) for members in rounds]


async def _store_many(
    conn: Connection, plans: Sequence[_Plan], *, lease_seconds: float | None
) -> list[_Stored]:
    """Store each text on its contact's open conversation; queue its reply when due.

    With `lease_seconds` a queued reply is claimed for the caller; with None it is left for
    a reply worker, who is notified on commit (see sms_outbox)."""
    stored: dict[int, _Stored] = {}
    for members in _statement_rounds(plans):
        batch = [plans[i] for i in members]
        rows = await conn.fetch(
            _STORE_SQL,
            [p.target.channel.id for p in batch],
            [p.target.channel.workspace_id for p in batch],
            [p.contact_number for p in batch],
            [p.sms.body for p in batch],
            [p.sms.message_sid for p in batch],
            [p.sms.num_segments for p in batch],
            [p.target.channel.phone_number for p in batch],
            [p.reply_due for p in batch],
            agent_modalities(voice=False),
            lease_seconds,
            sms_outbox.NOTIFY_CHANNEL,
        )
        assert len(rows) == len(batch)
        for index, row in zip(members, rows, strict=True):
            reply = None
            if row["reply_id"] is not None:
                claim = Claim(row["reply_id"], row["claim"]) if row["claim"] is not None else None
                reply = (row["reply_id"], claim)
            stored[index] = _Stored(
                row["conversation_id"], row["message_id"], row["agent_id"], row["opted_out"], reply
            )
    return [stored[i] for i in range(len(plans))]


async def receive_many(
    conn: Connection,
    messages: Sequence[InboundSms],
    *,
    can_send: bool,
    lease_seconds: float | None,
) -> list[Received]:
    """Store inbound texts on their conversations and queue each AI reply that is due, in
    two round trips for all of them (more only for opt-out keywords and for several texts
    of one conversation). One result per text, in order.

    With `lease_seconds` a queued reply is claimed for the caller; with None it is left
    for a reply worker.

    Each text is atomic on its own: a crash leaves either nothing of it (Twilio's retry
    redoes it) or the message together with its pending reply (and a keyword's opt-out
    state). Keywords are applied first, so a text that arrived with its contact's STOP is
    never answered."""
    targets = await resolve_inbound_many(conn, ChannelKind.SMS, {m.to_number for m in messages})
    received: dict[int, Received] = {}
    ordinary: list[tuple[int, _Plan]] = []
    for index, sms in enumerate(messages):
        target = targets.get(sms.to_number)
        refused = admission.refusal(target, ChannelKind.SMS)
        if target is None:
            received[index] = Received(Outcome.UNKNOWN_NUMBER)
            continue
        if refused is Refusal.NUMBER_REGION_NOT_ENABLED:
            received[index] = Received(Outcome.REGION_REFUSED, refused, target.workspace.id)
            continue
        plan = _plan(target, sms, can_send)
        if plan.contact is not None and opt_outs.keyword_of(sms.body, sms.opt_out_type):
            async with conn.transaction():  # the keyword's effect lands with the message
                received[index] = await _receive_keyword(conn, plan, can_send, lease_seconds)
        else:
            ordinary.append((index, plan))
    stored = await _store_many(conn, [p for _, p in ordinary], lease_seconds=lease_seconds)
    for (index, plan), one in zip(ordinary, stored, strict=True):
        received[index] = _received(plan, one, can_send)
    return [received[i] for i in range(len(messages))]


def _plan(target: InboundTarget, sms: InboundSms, can_send: bool) -> _Plan:
    """The reasons not to reply that are known before the store (the opt-out state and the
    agent come back with it)."""
    contact = replyable_contact(sms.from_number)
    early = admission.refusal(target, ChannelKind.SMS, contact=admission.Contact(contact))
    return _Plan(target, sms, contact, reply_due=early is None and can_send)


def _received(plan: _Plan, stored: _Stored, can_send: bool) -> Received:
    workspace_id = plan.target.channel.workspace_id
    if stored.message_id is None:
        return Received(Outcome.DUPLICATE, None, workspace_id, stored.conversation_id)
    reason: Refusal | NoReply | None = admission.refusal(
        plan.target,
        ChannelKind.SMS,
        contact=admission.Contact(plan.contact, opted_out=stored.opted_out),
        agent_found=stored.agent_id is not None,
    )
    if reason is None and not can_send:
        reason = NoReply.SENDING_NOT_CONFIGURED
    if reason is not None:
        assert stored.reply is None
        return Received(
            Outcome.STORED, reason, workspace_id, stored.conversation_id, stored.message_id
        )
    assert stored.reply is not None
    reply_id, claim = stored.reply
    return Received(
        Outcome.REPLY_QUEUED,
        None,
        workspace_id,
        stored.conversation_id,
        stored.message_id,
        reply_id,
        claim,
    )


async def _receive_keyword(
    conn: Connection, plan: _Plan, can_send: bool, lease_seconds: float | None
) -> Received:
    """A STOP/START/HELP text: stored with no reply, the contact's state recorded; a word
    that is no keyword here (a plain "yes" from a subscribed contact) is an ordinary text."""
    assert plan.contact is not None
    our_number = plan.target.channel.phone_number
    found = await _applicable_keyword(conn, our_number, plan.contact, plan.sms)
    if found is None:
        [stored] = await _store_many(conn, [plan], lease_seconds=lease_seconds)
        return _received(plan, stored, can_send)
    [stored] = await _store_many(conn, [replace(plan, reply_due=False)], lease_seconds=None)
    workspace_id = plan.target.channel.workspace_id
    if stored.message_id is None:
        return Received(Outcome.DUPLICATE, None, workspace_id, stored.conversation_id)
    kind, word = found
    if kind is not Keyword.HELP:
        await opt_outs.set_opted_out(
            conn, our_number, plan.contact, opted_out=kind is Keyword.STOP, keyword=word
        )
    return Received(
        Outcome.STORED,
        _KEYWORD_REASONS[kind],
        workspace_id,
        stored.conversation_id,
        stored.message_id,
    )


async def _applicable_keyword(
    conn: Connection, our_number: str, contact: str, sms: InboundSms
) -> tuple[Keyword, str] | None:
    """The STOP/START/HELP keyword this message is, or None when it is an ordinary message
    (a plain "yes" from a subscribed contact answers the agent's question)."""
    found = opt_outs.keyword_of(sms.body, sms.opt_out_type)
    if found is None:
        return None
    kind, word = found
    if kind is Keyword.START and opt_outs.is_conditional_opt_in(word):
        if not await opt_outs.is_opted_out(conn, our_number, contact):
            return None
    return found


@dataclass(frozen=True)
class DeliveryStatus:
    message_sid: str
    status: str
    num_segments: int | None = None
    error_code: str | None = None
    reply_id: int | None = None  # from our status callback URL, its signature checked
    # The callback's addresses, when it gave them: a reply is only resolved by a callback
    # between the same two numbers (our number is From, the contact To).
    from_number: str | None = None
    to_number: str | None = None


@dataclass(frozen=True)
class Delivery:
    known: bool
    resolved_reply: bool = False  # a reply whose send outcome was unknown is now known sent
    charge: ChargeResult | None = None


def _same_route(reply: sms_outbox.OutboxReply, update: DeliveryStatus) -> bool:
    """Whether a callback is between the reply's two numbers, as far as it says."""
    same_from = update.from_number in (None, reply.from_number)
    return same_from and update.to_number in (None, reply.to_number)


async def record_delivery(conn: Connection, update: DeliveryStatus) -> Delivery:
    """Record a sent message's status; charge its segments once when the carrier took it."""
    resolved = False
    if update.reply_id is not None:
        reply = await sms_outbox.get(conn, update.reply_id)
        if reply is not None and not _same_route(reply, update):
            logger.warning(
                "sms.status_reply_route_mismatch",
                extra={"reply_id": reply.id, "message_sid": update.message_sid},
            )
        elif reply is not None and reply.message_sid is None:
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
                idempotency_key=billing.charge_key(
                    ChargeKind.OUTBOUND_MESSAGES, update.message_sid
                ),
                conversation_id=row["conversation_id"],
                reference=update.message_sid,
            )
        return Delivery(known=True, resolved_reply=resolved, charge=charge)
