"""Postgres restarted during a live worker call: the call goes on, and every utterance is
stored once the database is back, or its loss is logged with the ids that name it.

The test runs its own embedded Postgres (so stopping it disturbs no other test) and its own
worker on it, under its own agent name; the caller is a real SIP-kind participant.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from shared import calls as calls_db
from shared.admission import Admitted
from shared.pg import UNAVAILABLE_ERRORS
from shared.settings import Settings
from tests.standins.openai_api import OpenAIStandIn
from tests.support import factories
from tests.support.audio import espeak_pcm
from tests.support.calls import ended_call
from tests.support.embedded_postgres import OwnPostgres, own_postgres
from tests.support.livekit_server import LiveKitServer
from tests.support.polling import eventually
from tests.support.processes import free_port
from tests.support.worker_process import WorkerProcess, start_worker, worker_env
from tests.worker.conftest import CallFactory
from tests.worker.test_voice_calls import OUR_NUMBER, messages_of, voice_line
from worker import call_session as call_session_module
from worker.caller import Caller

AGENT = "wassla-voice-pg-restart"
# Longer than the worker's short store retries (0.5 s + 1.0 s) take to give up.
DOWN_AFTER_LAST_LINE = 2.5
GREETING = "Hello, you reached Acme."
HEARD = ("What are your opening hours?", "Do you deliver on Sundays?", "Thank you very much.")
REPLIES = ("We open at nine.", "Yes, we deliver on Sundays.", "You are welcome.")


@pytest.fixture
async def database() -> AsyncIterator[OwnPostgres]:
    with own_postgres() as postgres:
        await postgres.migrate()
        yield postgres


@pytest.fixture
def pg_worker(
    livekit: LiveKitServer,
    openai_standin: OpenAIStandIn,
    database: OwnPostgres,
    data_dir: Path,
    s3_endpoint: str,
    recordings_bucket: str,
) -> Iterator[WorkerProcess]:
    port = free_port()
    env = worker_env(
        livekit=livekit,
        openai_base_url=openai_standin.base_url,
        pg_dsn=database.dsn,
        data_dir=data_dir,
        s3_endpoint=s3_endpoint,
        health_port=port,
        extra={"WORKER_AGENT_NAME": AGENT},
    )
    process = start_worker(env, port)
    yield process
    process.stop()


@pytest.fixture
async def phone_calls(livekit: LiveKitServer) -> AsyncIterator[CallFactory]:
    factory = CallFactory(livekit=livekit, phones=[])
    yield factory
    for phone in factory.phones:
        await phone.hang_up()


async def test_postgres_restart_mid_call_the_call_goes_on_and_no_utterance_is_lost_silently(
    database: OwnPostgres,
    openai_standin: OpenAIStandIn,
    pg_worker: WorkerProcess,
    phone_calls: CallFactory,
) -> None:
    openai_standin.reset()
    openai_standin.script_transcripts(*HEARD)
    openai_standin.script_chat(*REPLIES)
    pool = await asyncpg.create_pool(database.dsn, min_size=1, max_size=2)
    try:
        line = await voice_line(pool, greeting=GREETING)
    finally:
        await pool.close()  # its connections do not outlive the restart

    phone, call_sid = await phone_calls.dial(called_number=OUR_NUMBER, agent_name=AGENT)
    greeted_at = await phone.wait_agent_speaking(after=0.0, within=30)
    await phone.wait_agent_quiet(after=greeted_at)

    async def turn(utterance: str) -> float:
        phone.say(espeak_pcm(utterance))
        spoke_until = await phone.finish_saying()
        answered_at = await phone.wait_agent_speaking(after=spoke_until, within=30)
        return await phone.wait_agent_quiet(after=answered_at, within=30)

    await turn(HEARD[0])

    # Down while the caller speaks and the agent answers, and past the store retries.
    await asyncio.to_thread(database.stop)
    reply_done = await turn(HEARD[1])  # the call goes on without its database
    await asyncio.sleep(max(0.0, reply_done + DOWN_AFTER_LAST_LINE - time.monotonic()))
    await asyncio.to_thread(database.start)

    await turn(HEARD[2])  # and after it is back
    assert not phone.hung_up

    pool = await asyncpg.create_pool(database.dsn, min_size=1, max_size=2)
    try:
        expected = [("assistant", GREETING)]
        for heard, reply in zip(HEARD, REPLIES, strict=True):
            expected += [("user", heard), ("assistant", reply)]

        async def settled() -> list[asyncpg.Record] | None:
            rows = await messages_of(pool, call_sid)
            stored = {(r["role"], r["body"]) for r in rows}
            lost = pg_worker.events("call.transcript_lost")
            missing = [e for e in expected if e not in stored]
            return rows if len(missing) <= len(lost) and stored else None

        try:
            rows = await eventually(settled, within=30, what="every line stored or logged lost")
        except TimeoutError:
            stored_now = {(r["role"], r["body"]) for r in await messages_of(pool, call_sid)}
            failed = [
                (r.get("task"), r.get("error_type"), r.get("call_sid"))
                for r in pg_worker.events("call.task_failed")
            ]
            pytest.fail(
                f"lost without a call.transcript_lost line naming them:"
                f" {[e for e in expected if e not in stored_now]}; task failures logged: {failed}"
            )
        stored = [(r["role"], r["body"]) for r in rows]
        missing = [e for e in expected if e not in stored]
        lost = pg_worker.events("call.transcript_lost")
        conversation = await pool.fetchval(
            "select conversation_id from calls where call_sid = $1", call_sid
        )
        for record in lost:
            assert record["call_sid"] == call_sid
            assert record["conversation"] == str(conversation)
            assert record["item"]
        assert sorted(r["role"] for r in lost) == sorted(role for role, _ in missing), (
            stored,
            pg_worker.log_tail(80),
        )
        assert len(stored) == len(set(stored)), stored  # no line stored twice
        assert stored == [e for e in expected if e in stored]  # in the order spoken

        await phone.hang_up()
        call = await ended_call(pool, call_sid, within=30)
        assert call.status == "completed"
        charges = await pool.fetch(
            "select kind, quantity, idempotency_key from charges where workspace_id = $1",
            line["workspace"].id,
        )
        assert [(c["kind"], c["quantity"], c["idempotency_key"]) for c in charges] == [
            ("voice_minutes", 1, f"voice_minutes:{call_sid}")
        ]
        async with pool.acquire() as conn:
            again = await calls_db.get_call(conn, call_sid)
        assert again is not None and again.ended_at == call.ended_at
    finally:
        await pool.close()


# --- what the call cannot keep is named, with its ids -----------------------------------


@pytest.fixture
async def unreachable_pool() -> AsyncIterator[asyncpg.Pool]:
    """A pool whose every connection is refused (nothing listens on its port)."""
    dsn = f"postgresql://wassla@127.0.0.1:{free_port()}/wassla"
    dead = await asyncpg.create_pool(dsn, min_size=0, max_size=1, timeout=2)
    yield dead
    await dead.close()


async def call_session(
    pool: asyncpg.Pool, dead: asyncpg.Pool, settings: Settings
) -> call_session_module.CallSession:
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn)
        agent = await factories.agent(conn, ws.id)
    call_sid = "CA" + uuid.uuid4().hex
    return call_session_module.CallSession(
        settings=settings,
        pool=dead,
        admitted=Admitted(
            agent=agent,
            workspace_id=ws.id,
            conversation_id=uuid.uuid4(),
            call_sid=call_sid,
            call_id=uuid.uuid4(),
            is_test=False,
        ),
        caller=Caller(
            identity="sip_+15550001111",
            is_sip=True,
            call_sid=call_sid,
            called_number=OUR_NUMBER,
            caller_number="+15550001111",
            joined_at=datetime.now(UTC),
        ),
        room_name="call-unit",
    )


def lost_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "call.transcript_lost"]


async def test_lines_still_waiting_for_the_database_when_the_call_ends_are_logged_with_ids(
    pool: asyncpg.Pool,
    unreachable_pool: asyncpg.Pool,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(call_session_module, "_STORE_RETRY_DELAYS", (0.05,))
    monkeypatch.setattr(call_session_module, "_OUTAGE_RETRY_SECONDS", 0.05)
    monkeypatch.setattr(call_session_module, "_FINISH_WAIT_SECONDS", 0.5)
    monkeypatch.setattr(call_session_module, "_TRANSCRIPT_QUEUE_MAX", 2)
    call = await call_session(pool, unreachable_pool, settings)
    caplog.set_level(logging.INFO, logger="worker.call")
    for n, user in enumerate((False, True, False)):
        call.queue_line(call_session_module._Line(f"item_{n}", user, f"line {n}", False))

    [full] = [vars(r) for r in lost_lines(caplog)]  # the third: two already wait
    assert (full["item"], full["reason"], full["role"]) == ("item_2", "queue_full", "assistant")

    with pytest.raises(UNAVAILABLE_ERRORS):  # closing the call needs the database too
        await call.finish(None)
    lost = [vars(r) for r in lost_lines(caplog)]
    assert [(r["item"], r["reason"]) for r in lost] == [
        ("item_2", "queue_full"),
        ("item_0", "database_unavailable"),
        ("item_1", "database_unavailable"),
    ]
    for record in lost:
        assert record["call_sid"] == call.admitted.call_sid
        assert record["conversation"] == str(call.admitted.conversation_id)
        assert record["provider_id"].endswith(f":{record['item']}")
    assert any(r.getMessage() == "call.transcript_waiting" for r in caplog.records)
