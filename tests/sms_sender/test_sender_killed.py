"""A SIGKILLed `python -m sms_sender` cannot give its claims back: another sender takes its
replies over within seconds (short leases the live sender renews), and sends each once."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from shared.settings import Settings
from tests.standins.openai_api import ChatScript, OpenAIStandIn
from tests.standins.twilio_api import TwilioStandIn
from tests.support.polling import eventually
from tests.support.service_processes import running_sender
from tests.support.sms import message_sid, replies, send_sms, sms_setup

# Before short leases a dead sender's claims were held for the whole lease (tens of seconds).
TAKEOVER_WITHIN_SECONDS = 10.0


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    # A model deadline far past the test: the first sender still waits on the model when
    # it is killed, however long the second takes to start.
    return base_settings.changed({"sms.replies": "worker", "openai.timeout_seconds": 90.0})


async def test_killed_senders_claims_are_sent_by_the_other_within_seconds_once_each(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    pool: asyncpg.Pool,
    openai_standin: OpenAIStandIn,
    twilio_standin: TwilioStandIn,
) -> None:
    await sms_setup(pool)
    count = 3
    # The first sender's model calls hang: it holds its claims when it is killed.
    openai_standin.script_chat(
        *(ChatScript("never sent", first_token_delay=90) for _ in range(count))
    )
    with running_sender(settings) as doomed:
        await doomed.wait_listening()
        for i in range(count):
            await send_sms(client, f"question {i}", sid=message_sid())
        await eventually(
            lambda: len(openai_standin.chat_requests) == count,
            within=10,
            interval=0.02,
            what="the first sender's model requests",
        )
        claimed = await pool.fetch(
            "select id, claim from sms_replies where claim is not null order by id"
        )
        assert len(claimed) == count
        with running_sender(settings) as survivor:
            await survivor.wait_listening()
            await doomed.wait_listening()  # still alive and holding every claim
            held = await pool.fetch("select status, claim from sms_replies order by id")
            assert [(r["status"], r["claim"]) for r in held] == [
                ("pending", c["claim"]) for c in claimed
            ]
            doomed.kill()
            killed_at = time.monotonic()
            try:
                await eventually(
                    lambda: len(twilio_standin.messages) >= count,
                    within=30,
                    interval=0.05,
                    what="the dead sender's replies sent by the other",
                )
            except TimeoutError:
                rows = [dict(r) for r in await replies(pool)]
                pytest.fail(f"not taken over: {rows}\n{survivor.log_tail(60)}")
            took = time.monotonic() - killed_at
            await asyncio.sleep(1.0)  # anything sent twice would show up by now
    assert took < TAKEOVER_WITHIN_SECONDS, f"took over after {took:.1f}s"
    assert len(twilio_standin.messages) == count
    assert {m["body"] for m in twilio_standin.messages} == {openai_standin.default_reply}
    rows = await replies(pool)
    assert [r["status"] for r in rows] == ["sent"] * count
    assert len({r["message_sid"] for r in rows}) == count
    # Taken over under new claims: the dead sender's could no longer send.
    assert {r["claim"] for r in rows}.isdisjoint({c["claim"] for c in claimed})
