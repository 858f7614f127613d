"""The console's live feed against real Postgres: the migration's triggers notify, one
listener fans out by workspace, a slow subscriber is dropped, a lost connection resyncs."""

from __future__ import annotations

import asyncio
import json

import asyncpg

from shared import billing, conversations
from shared.models import ChargeKind
from shared.settings import Settings
from tests.console.conftest import Demo
from tests.support.polling import eventually
from webhook_gateway.console.live import (
    QUEUE_SIZE,
    LiveEvent,
    LiveEvents,
    Subscription,
    parse_payload,
)


async def _drain(subscription: Subscription, into: list[LiveEvent]) -> None:
    while (event := await subscription.next()) is not None:
        into.append(event)


async def test_changes_reach_their_workspace_only_and_a_slow_subscriber_is_dropped(
    settings: Settings, pool: asyncpg.Pool, demo: Demo
) -> None:
    async with pool.acquire() as conn:
        conversation = await conversations.open_conversation(
            conn,
            workspace_id=demo.workspace.id,
            kind="sms",
            channel_id=demo.sms.id,
            contact_number="+15557654321",
            agent_id=demo.agent.id,
        )
    feed = LiveEvents(settings)
    fast_events: list[LiveEvent] = []
    other_events: list[LiveEvent] = []
    try:
        async with (
            feed.subscribe(demo.workspace.id) as fast,
            feed.subscribe(demo.workspace.id) as slow,
            feed.subscribe(demo.other.id) as other,
        ):
            readers = [
                asyncio.create_task(_drain(fast, fast_events)),
                asyncio.create_task(_drain(other, other_events)),
            ]
            turns = QUEUE_SIZE + 10
            for n in range(turns):  # one transaction each: one notification each
                async with pool.acquire() as conn:
                    await conversations.add_message(
                        conn, conversation, direction="inbound", role="user", body=f"turn {n}"
                    )
            async with pool.acquire() as conn:
                await billing.record_charge(
                    conn,
                    workspace_id=demo.workspace.id,
                    kind=ChargeKind.OUTBOUND_MESSAGES,
                    quantity=1,
                    idempotency_key=billing.charge_key(ChargeKind.OUTBOUND_MESSAGES, "SMtest"),
                    conversation_id=conversation,
                )
            await eventually(
                lambda: any(e.kind == "charge" for e in fast_events),
                within=15,
                what="the charge reached the fast subscriber",
            )
            assert [e.kind for e in fast_events].count("message") == turns
            assert {e.conversation for e in fast_events if e.kind != "workspace"} == {conversation}
            assert {e.kind for e in fast_events} == {"message", "charge", "workspace"}
            # The one that never read was dropped at QUEUE_SIZE, and told so.
            assert slow.dropped
            assert await slow.next() is None
            assert other_events == []
            for reader in readers:
                reader.cancel()
    finally:
        await feed.aclose()
    assert feed.subscriber_count == 0


async def test_a_lost_listener_connection_is_reopened_and_pages_resync(
    settings: Settings, pool: asyncpg.Pool, demo: Demo
) -> None:
    feed = LiveEvents(settings)
    try:
        async with feed.subscribe(demo.workspace.id) as subscription:
            killed = await pool.fetchval(
                "select pg_terminate_backend(pid) from pg_stat_activity"
                " where query ilike 'listen%console_events%' and pid <> pg_backend_pid()"
            )
            assert killed
            async with asyncio.timeout(20):
                event = await subscription.next()
            assert event is not None and event.kind == "resync"
            # Listening again: the next change arrives.
            async with pool.acquire() as conn:
                await conn.execute(
                    "update workspaces set credit_balance_minor = credit_balance_minor + 1"
                    " where id = $1",
                    demo.workspace.id,
                )
            async with asyncio.timeout(20):
                event = await subscription.next()
            assert event == LiveEvent("workspace", None)
    finally:
        await feed.aclose()


def test_a_malformed_notification_is_ignored_not_delivered() -> None:
    workspace = "6f1c1f9e-6a43-4c1e-9a51-0f3f0b5e2a11"

    def payload(**fields: object) -> str:
        return json.dumps({"workspace": workspace, **fields})

    parsed = parse_payload(payload(kind="workspace", conversation=None))
    assert parsed is not None and parsed[1] == LiveEvent("workspace", None)
    for bad in (
        "not json",
        "[]",
        json.dumps({"workspace": "nope", "kind": "message"}),
        payload(kind="drop table"),
        payload(kind="message", conversation=7),
        payload(kind="message", pad="x" * 2000),
    ):
        assert parse_payload(bad) is None, bad
