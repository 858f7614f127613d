"""The outbox of AI replies to inbound SMS: one row per reply, written before Twilio is
acknowledged, so a reply survives a restart and is sent at most once.

Why at most once: Twilio's create-message call is not idempotent. A row is moved to
`sending` in a committed write before the call; a row found still `sending` long after
(the process died, or the answer was lost mid-call) may or may not have reached Twilio,
so it becomes `unknown` and is never sent again. The status callback URL names the reply
(`?reply=<id>`), so if Twilio did accept it, its first status callback resolves the row to
`sent` with the MessageSid, stores the outbound message and charges it. A duplicate text to
a customer and a double charge are worse than a rare lost reply, which is logged.

Claims: whoever works on a pending row holds a claim (a uuid) with a short lease, which it
renews while it works (`renew`). Only the holder of the current claim can move the row to
`sending`; a sweeper takes over a pending row whose lease expired (its worker died), and the
old worker's claim is then dead. A `sending` row whose lease expired becomes `unknown`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from shared.pg import Connection

_COLUMNS = (
    "id, workspace_id, conversation_id, inbound_message_id, agent_id, from_number, to_number,"
    " status, body, attempts, claim, lease_until, sending_at, message_sid, error, created_at"
)


@dataclass(frozen=True)
class OutboxReply:
    id: int
    workspace_id: UUID
    conversation_id: UUID
    inbound_message_id: int
    agent_id: UUID | None
    from_number: str
    to_number: str
    status: str
    body: str | None
    attempts: int
    claim: UUID | None
    lease_until: datetime | None
    sending_at: datetime | None
    message_sid: str | None
    error: str | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> OutboxReply:
        return cls(**dict(row))


@dataclass(frozen=True)
class Claim:
    reply_id: int
    claim: UUID


NOTIFY_CHANNEL = "sms_outbox"


async def get(conn: Connection, reply_id: int) -> OutboxReply | None:
    row = await conn.fetchrow(f"select {_COLUMNS} from sms_replies where id = $1", reply_id)
    return OutboxReply.from_row(row) if row else None


async def claim_due(conn: Connection, *, lease_seconds: float, limit: int = 50) -> list[Claim]:
    """Take over pending rows that are due and whose lease expired (or was released)."""
    rows = await conn.fetch(
        """
        update sms_replies r set claim = gen_random_uuid(),
               lease_until = now() + make_interval(secs => $1::float8), updated_at = now()
        where r.id in (
            select id from sms_replies
            where status = 'pending' and not_before <= now()
              and (lease_until is null or lease_until < now())
            order by id limit $2 for update skip locked)
        returning r.id, r.claim
        """,
        lease_seconds,
        limit,
    )
    return [Claim(r["id"], r["claim"]) for r in rows]


async def renew(conn: Connection, claims: Sequence[Claim], *, lease_seconds: float) -> int:
    """Extend the leases of the claims a live process still holds, in one statement; the
    number of rows still held (a claim taken over or a finished row is left alone)."""
    if not claims:
        return 0
    done = await conn.execute(
        """
        update sms_replies r
        set lease_until = greatest(r.lease_until, now() + make_interval(secs => $3::float8))
        from unnest($1::bigint[], $2::uuid[]) as held (id, claim)
        where r.id = held.id and r.claim = held.claim and r.status in ('pending', 'sending')
        """,
        [c.reply_id for c in claims],
        [c.claim for c in claims],
        lease_seconds,
    )
    return int(done.rsplit(" ", 1)[1])


async def release(conn: Connection, claim: Claim) -> None:
    """Give a pending row back at once (graceful stop), so the next process resumes it."""
    await conn.execute(
        "update sms_replies set claim = null, lease_until = null, updated_at = now()"
        " where id = $1 and claim = $2 and status = 'pending'",
        claim.reply_id,
        claim.claim,
    )


async def begin_send(conn: Connection, claim: Claim, body: str) -> bool:
    """pending -> sending with the text to send, committed before the REST call; False when
    the claim was lost (another process owns the row now)."""
    done = await conn.execute(
        """
        update sms_replies set status = 'sending', sending_at = now(), attempts = attempts + 1,
               body = $3, updated_at = now()
        where id = $1 and claim = $2 and status = 'pending'
        """,
        claim.reply_id,
        claim.claim,
        body,
    )
    return done.endswith(" 1")


async def retry_later(
    conn: Connection, claim: Claim, *, delay_seconds: float, lease_seconds: float, error: str
) -> None:
    """sending -> pending after Twilio refused with a retryable error (nothing was sent)."""
    await conn.execute(
        """
        update sms_replies set status = 'pending', sending_at = null, error = $3,
               not_before = now() + make_interval(secs => $4::float8),
               lease_until = now() + make_interval(secs => $4::float8 + $5::float8),
               updated_at = now()
        where id = $1 and claim = $2 and status = 'sending'
        """,
        claim.reply_id,
        claim.claim,
        error,
        delay_seconds,
        lease_seconds,
    )


async def finish(conn: Connection, claim: Claim, *, status: str, error: str) -> None:
    """End a reply that will not be sent: `failed` (model/Twilio refused) or `skipped`."""
    assert status in ("failed", "skipped")
    await conn.execute(
        "update sms_replies set status = $3, error = $4, lease_until = null, updated_at = now()"
        " where id = $1 and claim = $2 and status in ('pending', 'sending')",
        claim.reply_id,
        claim.claim,
        status,
        error,
    )


async def mark_unknown(conn: Connection, reply_id: int, *, error: str) -> None:
    """A send whose outcome we cannot know: never sent again; a status callback resolves it."""
    await conn.execute(
        "update sms_replies set status = 'unknown', error = $2, updated_at = now()"
        " where id = $1 and status = 'sending'",
        reply_id,
        error,
    )


async def expire_stale_sending(conn: Connection, *, older_than_seconds: float) -> list[int]:
    """Rows left `sending` by a process that died mid-call become `unknown`: its lease
    lapsed (the live sender renews it during the call), or the call began too long ago."""
    rows = await conn.fetch(
        """
        update sms_replies set status = 'unknown', updated_at = now(),
               error = 'process stopped during the send; outcome unknown, not re-sent'
        where status = 'sending'
          and (lease_until is null or lease_until < now()
               or sending_at < now() - make_interval(secs => $1::float8))
        returning id
        """,
        older_than_seconds,
    )
    return [r["id"] for r in rows]


async def skip_expired(conn: Connection, *, older_than_seconds: float) -> list[int]:
    """Pending replies too old to be worth sending (the gateway was down for long)."""
    rows = await conn.fetch(
        """
        update sms_replies set status = 'skipped', error = 'too old to send', updated_at = now()
        where status = 'pending'
          and created_at < now() - make_interval(secs => $1::float8)
          and (lease_until is null or lease_until < now())
        returning id
        """,
        older_than_seconds,
    )
    return [r["id"] for r in rows]


async def record_sent(
    conn: Connection,
    reply_id: int,
    message_sid: str,
    *,
    status: str,
    num_segments: int | None,
) -> bool:
    """The reply reached Twilio as `message_sid`: mark it and store the outbound message.

    Called by the sender after the REST call and by a status callback naming the reply,
    in either order or at once; the outbound message is stored once. False when the reply
    already has a different MessageSid.
    """
    # One statement (atomic without a transaction): mark the reply, store its outbound
    # message once per MessageSid, and move the conversation's last-message time.
    stored: bool = await conn.fetchval(
        """
        with sent as (
            update sms_replies set status = 'sent', message_sid = $2, updated_at = now(),
                   lease_until = null,
                   error = case when status = 'sent' then error end
            where id = $1 and (message_sid is null or message_sid = $2)
            returning conversation_id, body
        ), inserted as (
            insert into messages (conversation_id, direction, role, body, provider_id, status,
                                  num_segments)
            select conversation_id, 'outbound', 'assistant', coalesce(body, ''), $2, $3, $4
            from sent
            on conflict (provider_id) do nothing
            returning conversation_id, created_at
        ), touched as (
            update conversations set last_message_at = inserted.created_at
            from inserted where conversations.id = inserted.conversation_id
        )
        select exists (select 1 from sent)
        """,
        reply_id,
        message_sid,
        status,
        num_segments,
    )
    return stored
