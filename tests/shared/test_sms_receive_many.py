"""Texts that arrive together are stored in one statement (shared.sms.receive_many): each
must end exactly as it would have one at a time."""

import asyncpg

from shared import sms
from shared.admission import Refusal
from tests.support import factories

CONTACT, OTHER, SHORT_CODE = "+15557654321", "+15557654322", "12345"


def _texts(our_number: str, prefix: str) -> list[sms.InboundSms]:
    def text(n: int, sender: str, body: str, to: str = our_number) -> sms.InboundSms:
        return sms.InboundSms(f"SM{prefix}{n}", sender, to, body)

    return [
        text(1, CONTACT, "Are you open today?"),
        text(2, CONTACT, "And tomorrow?"),  # the same conversation, in the same batch
        text(1, CONTACT, "Are you open today?"),  # Twilio's retry of the first
        text(3, OTHER, "STOP"),
        text(4, OTHER, "Do you deliver?"),  # arrived with its contact's STOP
        text(5, SHORT_CODE, "Your code is 1234"),
        text(6, CONTACT, "hello", to="+15559990000"),  # a number nobody connected
    ]


async def _counts(conn: asyncpg.Connection, our_number: str) -> tuple[int, int, int]:
    row = await conn.fetchrow(
        """
        select (select count(*) from conversations c join channels ch on ch.id = c.channel_id
                where ch.phone_number = $1) as conversations,
               (select count(*) from messages m join conversations c on c.id = m.conversation_id
                join channels ch on ch.id = c.channel_id where ch.phone_number = $1) as messages,
               (select count(*) from sms_replies where from_number = $1) as replies
        """,
        our_number,
    )
    assert row is not None
    return row["conversations"], row["messages"], row["replies"]


async def test_a_batch_ends_as_the_same_texts_one_at_a_time(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        for number in ("+15551230001", "+15551230002"):
            ws = await factories.workspace(conn, name=number)
            agent = await factories.agent(conn, ws.id)
            await factories.channel(conn, ws.id, number=number, agent_id=agent.id)

        batched = await sms.receive_many(
            conn, _texts("+15551230001", "b"), can_send=True, lease_seconds=None
        )
        singly = [
            (await sms.receive_many(conn, [text], can_send=True, lease_seconds=None))[0]
            for text in _texts("+15551230002", "s")
        ]

        def outcomes(received: list[sms.Received]) -> list[tuple[sms.Outcome, object]]:
            return [(r.outcome, r.reason) for r in received]

        assert (
            outcomes(batched)
            == outcomes(singly)
            == [
                (sms.Outcome.REPLY_QUEUED, None),
                (sms.Outcome.REPLY_QUEUED, None),
                (sms.Outcome.DUPLICATE, None),
                (sms.Outcome.STORED, sms.NoReply.STOP_KEYWORD),
                (sms.Outcome.STORED, Refusal.OPTED_OUT),
                (sms.Outcome.STORED, Refusal.SENDER_NOT_REPLYABLE),
                (sms.Outcome.UNKNOWN_NUMBER, None),
            ]
        )
        assert (
            batched[0].conversation_id == batched[1].conversation_id == batched[2].conversation_id
        )
        assert batched[0].reply_id != batched[1].reply_id
        # 3 conversations (two contacts and the short code), 5 messages, 2 replies: each way.
        assert (
            await _counts(conn, "+15551230001")
            == await _counts(conn, "+15551230002")
            == (
                3,
                5,
                2,
            )
        )


async def test_a_batch_of_one_conversations_texts_claims_each_reply(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn)
        agent = await factories.agent(conn, ws.id)
        channel = await factories.channel(conn, ws.id, agent_id=agent.id)
        texts = [
            sms.InboundSms(f"SMc{i}", CONTACT, channel.phone_number, f"text {i}") for i in range(4)
        ]
        received = await sms.receive_many(conn, texts, can_send=True, lease_seconds=60)
        claims = [r.reply for r in received]
        assert all(c is not None for c in claims)
        assert len({c.reply_id for c in claims if c}) == 4
        bodies = await conn.fetch("select body from messages order by id")
        assert [r["body"] for r in bodies] == [f"text {i}" for i in range(4)]  # arrival order
