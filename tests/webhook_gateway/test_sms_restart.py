"""A reply survives the gateway stopping between acknowledging Twilio and sending, and is
never sent twice: each test runs one real app lifespan, stops it, and starts a fresh one."""

from __future__ import annotations

import asyncio

import asyncpg
from fastapi import FastAPI

from shared.settings import Settings
from tests.standins.openai_api import ChatScript, OpenAIStandIn
from tests.standins.twilio_api import TwilioStandIn
from tests.support.gateway import running_gateway
from tests.support.polling import eventually
from tests.support.sms import (
    EMPTY_RESPONSE,
    charges,
    replies,
    send_sms,
    send_status,
    services_of,
    settle,
    sms_setup,
)


async def stop_abruptly(app: FastAPI) -> None:
    """What a killed process leaves: its in-flight reply tasks never finish."""
    tasks = list(services_of(app).tasks)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_restart_between_acknowledgement_and_send_still_sends_exactly_one_reply(
    settings: Settings,
    pool: asyncpg.Pool,
    openai_standin: OpenAIStandIn,
    twilio_standin: TwilioStandIn,
) -> None:
    await sms_setup(pool)
    # The first process is stopped while the model is still thinking.
    openai_standin.script_chat(ChatScript("too late", first_token_delay=3.0), "Hello again!")
    async with running_gateway(settings) as (app, client):
        response = await send_sms(client, "Are you there?")
        assert response.text == EMPTY_RESPONSE
        await eventually(
            lambda: len(openai_standin.chat_requests) == 1,
            within=10,
            interval=0.02,
            what="the model's request",
        )
        await stop_abruptly(app)
    assert twilio_standin.messages == []
    [pending] = await replies(pool)
    assert pending["status"] == "pending"

    async with running_gateway(settings) as (app, _):
        await settle(app)
    assert [m["body"] for m in twilio_standin.messages] == ["Hello again!"]
    [reply] = await replies(pool)
    assert reply["status"] == "sent" and reply["message_sid"] == twilio_standin.messages[0]["sid"]
    outbound = await pool.fetchval("select count(*) from messages where direction = 'outbound'")
    assert outbound == 1


async def test_reply_held_by_a_dead_process_is_resumed_once_its_lease_expires(
    settings: Settings,
    pool: asyncpg.Pool,
    openai_standin: OpenAIStandIn,
    twilio_standin: TwilioStandIn,
) -> None:
    await sms_setup(pool)
    openai_standin.script_chat(ChatScript("too late", first_token_delay=3.0), "Resumed.")
    async with running_gateway(settings) as (app, client):
        await send_sms(client, "hello")
        await eventually(
            lambda: len(openai_standin.chat_requests) == 1,
            within=10,
            interval=0.02,
            what="the model's request",
        )
        await stop_abruptly(app)
    # A killed process could not give its claim back: its lease still runs.
    await pool.execute(
        "update sms_replies set claim = gen_random_uuid(),"
        " lease_until = now() + interval '1 minute'"
    )
    async with running_gateway(settings) as (app, _):
        await settle(app)
        assert twilio_standin.messages == []  # not while the lease may still be held
        await pool.execute("update sms_replies set lease_until = now() - interval '1 second'")
        assert await app.state.gateway.sms_replier.sweep_once() == 1
        await settle(app)
    assert [m["body"] for m in twilio_standin.messages] == ["Resumed."]


async def test_crash_after_twilio_accepted_is_never_resent_and_its_callback_resolves_it(
    settings: Settings,
    pool: asyncpg.Pool,
    twilio_standin: TwilioStandIn,
) -> None:
    setup = await sms_setup(pool)
    twilio_standin.message_delay = 1.0  # Twilio takes the message but answers slowly
    try:
        async with running_gateway(settings) as (app, client):
            await send_sms(client, "hello")
            await eventually(
                lambda: _status(pool, "sending"), within=10, interval=0.02, what="a reply sending"
            )
            await stop_abruptly(app)  # dies before Twilio's answer arrives
        await eventually(
            lambda: len(twilio_standin.messages) == 1,
            within=10,
            interval=0.02,
            what="the message Twilio took",
        )
    finally:
        twilio_standin.message_delay = 0.0
    [sent] = twilio_standin.messages

    async with running_gateway(settings) as (app, client):
        await settle(app)
        # Still young: its process might be alive elsewhere, so it is left alone.
        assert (await replies(pool))[0]["status"] == "sending"
        await pool.execute("update sms_replies set sending_at = now() - interval '10 minutes'")
        await app.state.gateway.sms_replier.sweep_once()
        await settle(app)
        [reply] = await replies(pool)
        assert reply["status"] == "unknown" and reply["message_sid"] is None
        assert len(twilio_standin.messages) == 1  # never sent a second time

        # Twilio's status callback names the reply: the outcome is known after all.
        await send_status(client, sent["status_callback"], sent["sid"], "delivered")
        await send_status(client, sent["status_callback"], sent["sid"], "delivered")
    [reply] = await replies(pool)
    assert (reply["status"], reply["message_sid"]) == ("sent", sent["sid"])
    body = await pool.fetchval(
        "select body from messages where provider_id = $1 and direction = 'outbound'",
        sent["sid"],
    )
    assert body == sent["body"]
    assert [c["quantity"] for c in await charges(pool, setup.workspace.id)] == [1]


async def test_graceful_shutdown_finishes_a_reply_in_flight(
    settings: Settings,
    pool: asyncpg.Pool,
    openai_standin: OpenAIStandIn,
    twilio_standin: TwilioStandIn,
) -> None:
    await sms_setup(pool)
    openai_standin.script_chat(ChatScript("Made it.", first_token_delay=0.5))
    async with running_gateway(settings) as (_, client):
        await send_sms(client, "hello")
    # Leaving the lifespan drained the reply task instead of dropping it.
    assert [m["body"] for m in twilio_standin.messages] == ["Made it."]


async def test_pending_reply_too_old_to_matter_is_skipped_not_sent(
    settings: Settings,
    pool: asyncpg.Pool,
    openai_standin: OpenAIStandIn,
    twilio_standin: TwilioStandIn,
) -> None:
    await sms_setup(pool)
    openai_standin.script_chat(ChatScript("too late", first_token_delay=3.0))
    async with running_gateway(settings) as (app, client):
        await send_sms(client, "hello")
        await eventually(
            lambda: len(openai_standin.chat_requests) == 1,
            within=10,
            interval=0.02,
            what="the model's request",
        )
        await stop_abruptly(app)
    await pool.execute("update sms_replies set created_at = now() - interval '2 hours'")
    async with running_gateway(settings) as (app, _):
        await settle(app)
    assert twilio_standin.messages == []
    assert (await replies(pool))[0]["status"] == "skipped"


async def _status(pool: asyncpg.Pool, status: str) -> bool:
    found: bool = await pool.fetchval(
        "select exists(select 1 from sms_replies where status = $1)", status
    )
    return found
