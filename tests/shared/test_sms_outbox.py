import asyncio
import uuid

import asyncpg
import pytest

from shared import sms, sms_outbox
from shared.opt_outs import Keyword, keyword_of
from tests.support import factories


async def _pending(conn: asyncpg.Connection) -> sms_outbox.Claim:
    ws = await factories.workspace(conn)
    agent = await factories.agent(conn, ws.id)
    channel = await factories.channel(conn, ws.id, agent_id=agent.id)
    inbound = sms.InboundSms("SM1", "+15557654321", channel.phone_number, "hi")
    [received] = await sms.receive_many(conn, [inbound], can_send=True, lease_seconds=60)
    assert received.outcome is sms.Outcome.REPLY_QUEUED and received.reply is not None
    return received.reply


async def test_a_worker_whose_lease_was_taken_over_can_no_longer_send(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        first = await _pending(conn)
        assert await sms_outbox.claim_due(conn, lease_seconds=60) == []  # lease still held
        await conn.execute("update sms_replies set lease_until = now() - interval '1 second'")
        [second] = await sms_outbox.claim_due(conn, lease_seconds=60)
        assert second.reply_id == first.reply_id and second.claim != first.claim
        assert await sms_outbox.begin_send(conn, first, "stale") is False
        assert await sms_outbox.begin_send(conn, second, "hello") is True
        assert await sms_outbox.begin_send(conn, second, "hello") is False  # at most one send


async def test_sent_is_recorded_once_whichever_of_sender_and_callback_comes_first(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        claim = await _pending(conn)
        await sms_outbox.begin_send(conn, claim, "hello")
        by_callback = await sms_outbox.record_sent(
            conn, claim.reply_id, "SMout", status="delivered", num_segments=1
        )
        by_sender = await sms_outbox.record_sent(
            conn, claim.reply_id, "SMout", status="queued", num_segments=None
        )
        other = await sms_outbox.record_sent(
            conn, claim.reply_id, "SMother", status="queued", num_segments=None
        )
        rows = await conn.fetch("select status from messages where direction = 'outbound'")
    assert (by_callback, by_sender, other) == (True, True, False)
    assert [r["status"] for r in rows] == ["delivered"]  # the later answer did not downgrade


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("STOP", Keyword.STOP),
        (" stop. ", Keyword.STOP),
        ("Unsubscribe", Keyword.STOP),
        ("optout", Keyword.STOP),
        ("start", Keyword.START),
        ("Unstop", Keyword.START),
        ("HELP", Keyword.HELP),
        ("info?", Keyword.HELP),
        ("please stop texting me", None),
        ("stopping by later", None),
        ("", None),
    ],
)
def test_keywords_are_single_words_in_any_case(body: str, expected: Keyword | None) -> None:
    found = keyword_of(body)
    assert (found[0] if found else None) == expected


async def test_a_new_contacts_first_texts_arriving_at_once_share_one_conversation(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn)
        agent = await factories.agent(conn, ws.id)
        channel = await factories.channel(conn, ws.id, agent_id=agent.id)

    async def deliver(i: int) -> sms.Received:
        inbound = sms.InboundSms(f"SM{i}", "+15557654321", channel.phone_number, f"text {i}")
        async with pool.acquire() as conn:
            [received] = await sms.receive_many(conn, [inbound], can_send=True, lease_seconds=60)
            return received

    received = await asyncio.gather(*(deliver(i) for i in range(6)))
    assert {r.outcome for r in received} == {sms.Outcome.REPLY_QUEUED}
    assert len({r.conversation_id for r in received}) == 1
    async with pool.acquire() as conn:
        assert await conn.fetchval("select count(*) from conversations") == 1
        assert await conn.fetchval("select count(*) from messages") == 6
        assert await conn.fetchval("select count(*) from sms_replies") == 6


async def test_renewal_keeps_only_the_holders_lease_and_a_lapsed_send_is_never_resent(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        held = await _pending(conn)
        await conn.execute("update sms_replies set lease_until = now() + interval '1 second'")
        assert await sms_outbox.renew(conn, [held], lease_seconds=30) == 1
        lease = await conn.fetchval("select lease_until - now() from sms_replies")
        assert lease.total_seconds() > 25
        # A claim that lost the row renews nothing.
        stale = sms_outbox.Claim(held.reply_id, uuid.uuid4())
        assert await sms_outbox.renew(conn, [stale], lease_seconds=30) == 0

        # The holder began the send, then died: its lease lapses and nobody renews it.
        assert await sms_outbox.begin_send(conn, held, "hello") is True
        await conn.execute("update sms_replies set lease_until = now() - interval '1 second'")
        assert await sms_outbox.claim_due(conn, lease_seconds=5) == []  # never taken over
        assert await sms_outbox.expire_stale_sending(conn, older_than_seconds=3600) == [
            held.reply_id
        ]
        row = await conn.fetchrow("select status, claim from sms_replies")
        assert row["status"] == "unknown" and row["claim"] == held.claim
        assert await sms_outbox.claim_due(conn, lease_seconds=5) == []
        assert await sms_outbox.renew(conn, [held], lease_seconds=30) == 0  # over for good
