"""`python -m sms_sender` serves Prometheus on its health port: replies by outcome."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from shared.settings import Settings
from tests.standins.openai_api import ChatScript, OpenAIStandIn
from tests.standins.twilio_api import TwilioStandIn
from tests.support.metrics import scrape, value
from tests.support.polling import eventually
from tests.support.service_processes import running_sender
from tests.support.sms import send_sms, sms_setup


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    return base_settings.changed({"sms.replies": "worker"})


async def test_sent_and_failed_replies_are_counted_on_the_health_port(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    pool: asyncpg.Pool,
    openai_standin: OpenAIStandIn,
    twilio_standin: TwilioStandIn,
) -> None:
    await sms_setup(pool)
    openai_standin.script_chat("Sent.", ChatScript("", status=400))  # the second one fails
    with running_sender(settings) as sender:
        await sender.wait_listening()
        url = sender.base_url + "/metrics"
        before = await scrape(url)
        assert value(before, "wassla_sms_replies_total", outcome="sent", reason="") == 0
        await send_sms(client, "first")
        await eventually(lambda: twilio_standin.messages, within=10, what="the first reply")
        await send_sms(client, "second")

        async def failed() -> bool:
            rows = await pool.fetch("select status from sms_replies order by id")
            return [r["status"] for r in rows] == ["sent", "failed"]

        await eventually(failed, within=15, what="the second reply failed")
        after = await scrape(url)
        async with httpx.AsyncClient() as http:
            assert (await http.get(sender.base_url + "/")).status_code == 200  # still the check
    assert value(after, "wassla_sms_replies_total", outcome="sent", reason="") == 1
    assert value(after, "wassla_sms_replies_total", outcome="failed", reason="model") == 1
    assert len(twilio_standin.messages) == 1
