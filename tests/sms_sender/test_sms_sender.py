"""SMS_REPLIES=worker: the gateway only stores and queues; separate reply workers (real
`sms_worker.run` loops with their own pools) send each reply once."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from shared.settings import Settings
from shared.sms_replies import SmsReplier
from sms_sender import process as sms_worker
from tests.standins.openai_api import ChatScript, OpenAIStandIn
from tests.standins.twilio_api import TwilioStandIn
from tests.support.polling import eventually
from tests.support.processes import free_port
from tests.support.sms import (
    EMPTY_RESPONSE,
    inbound_count,
    message_sid,
    replies,
    send_sms,
    settle,
    sms_setup,
)


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    return base_settings.changed({"sms.replies": "worker"})


@asynccontextmanager
async def reply_workers(
    settings: Settings, count: int = 1, *, poll_seconds: float = 1.0
) -> AsyncIterator[list[SmsReplier]]:
    """`count` worker loops as `python -m sms_sender` runs them."""
    repliers: list[SmsReplier] = []
    all_started = asyncio.Event()

    def started(replier: SmsReplier) -> None:
        repliers.append(replier)
        if len(repliers) == count:
            all_started.set()

    tasks = [
        asyncio.create_task(
            sms_worker.run(
                settings, started=started, handle_signals=False, poll_seconds=poll_seconds
            )
        )
        for _ in range(count)
    ]
    try:
        async with asyncio.timeout(10):
            await all_started.wait()
        await asyncio.sleep(0.2)  # past each worker's first sweep
        yield repliers
    finally:
        for replier in repliers:
            replier.request_stop()
        await asyncio.gather(*tasks)


async def test_gateway_in_worker_mode_acknowledges_and_queues_but_never_sends(
    app: FastAPI,
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    openai_standin: OpenAIStandIn,
    twilio_standin: TwilioStandIn,
) -> None:
    await sms_setup(pool)
    response = await send_sms(client, "hello")
    await settle(app)
    assert response.text == EMPTY_RESPONSE and await inbound_count(pool) == 1
    [reply] = await replies(pool)
    assert (reply["status"], reply["claim"]) == ("pending", None)
    assert openai_standin.chat_requests == [] and twilio_standin.messages == []


async def test_worker_sends_a_queued_reply_once_it_is_notified(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    pool: asyncpg.Pool,
    openai_standin: OpenAIStandIn,
    twilio_standin: TwilioStandIn,
) -> None:
    await sms_setup(pool)
    openai_standin.script_chat("From the worker.")
    # The fallback poll is a minute away: only the gateway's NOTIFY can wake the worker.
    async with reply_workers(settings, poll_seconds=60):
        await send_sms(client, "hello")
        await eventually(
            lambda: len(twilio_standin.messages) == 1,
            within=10,
            interval=0.02,
            what="the reply sent",
        )
    assert [m["body"] for m in twilio_standin.messages] == ["From the worker."]
    [reply] = await replies(pool)
    assert reply["status"] == "sent"


async def test_two_workers_and_concurrent_retries_send_one_reply_each(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    pool: asyncpg.Pool,
    openai_standin: OpenAIStandIn,
    twilio_standin: TwilioStandIn,
) -> None:
    await sms_setup(pool)
    sids = [message_sid() for _ in range(6)]
    async with reply_workers(settings, count=2):
        await asyncio.gather(
            *(
                send_sms(client, f"question {i}", sid=sid)
                for i, sid in enumerate(sids)
                for _ in (1, 2, 3)
            )
        )
        await eventually(
            lambda: len(twilio_standin.messages) >= 6,
            within=10,
            interval=0.02,
            what="six replies sent",
        )
        await asyncio.sleep(0.3)  # anything sent twice would show up by now
    assert len(twilio_standin.messages) == 6
    assert [r["status"] for r in await replies(pool)] == ["sent"] * 6


async def test_worker_started_after_the_fact_picks_up_the_backlog(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    pool: asyncpg.Pool,
    openai_standin: OpenAIStandIn,
    twilio_standin: TwilioStandIn,
) -> None:
    await sms_setup(pool)
    openai_standin.script_chat(ChatScript("late but sent"))
    await send_sms(client, "hello")
    await settle(app)
    assert twilio_standin.messages == []
    async with reply_workers(settings):
        await eventually(
            lambda: len(twilio_standin.messages) == 1,
            within=10,
            interval=0.02,
            what="the reply sent",
        )


async def test_health_check_answers_while_the_worker_listens_and_its_database_answers(
    app: FastAPI, settings: Settings, pool: asyncpg.Pool
) -> None:
    port = free_port()
    async with (
        reply_workers(settings.changed({"sms.worker_health_port": port})) as [worker],
        httpx.AsyncClient() as http,
    ):
        assert worker.listening
        ok = await http.get(f"http://127.0.0.1:{port}/")
        assert (ok.status_code, ok.text) == (200, "ok\n")

        # The same worker's check over a database that refuses connections.
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            dead = await asyncpg.create_pool(
                f"postgresql://postgres@127.0.0.1:{closed.getsockname()[1]}/postgres",
                min_size=0,
                timeout=1,
            )
            dead_port = free_port()
            server = await sms_worker.serve_health(worker, dead, dead_port)
            try:
                down = await http.get(f"http://127.0.0.1:{dead_port}/")
            finally:
                server.close()
                await dead.close()
        assert down.status_code == 503

    # A replier that is not listening (the gateway's own, in worker mode) is not healthy.
    idle_port = free_port()
    server = await sms_worker.serve_health(app.state.gateway.sms_replier, pool, idle_port)
    try:
        async with httpx.AsyncClient() as http:
            idle = await http.get(f"http://127.0.0.1:{idle_port}/")
    finally:
        server.close()
    assert idle.status_code == 503
    # Once stopped, the worker no longer answers at all.
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as http:
            await http.get(f"http://127.0.0.1:{port}/")
