"""Calls survive the worker's life cycle: a crash is swept and charged, SIGTERM drains."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from shared import calls as calls_db
from tests.standins.openai_api import OpenAIStandIn
from tests.support import factories
from tests.support.audio import espeak_pcm
from tests.support.calls import ended_call
from tests.support.livekit_server import LiveKitServer
from tests.support.polling import eventually
from tests.support.processes import free_port
from tests.support.worker_process import WorkerProcess, start_worker, worker_env
from tests.worker.conftest import CallFactory
from tests.worker.test_voice_calls import OUR_NUMBER, messages_of, voice_line


async def open_livekit_call(
    pool: asyncpg.Pool, *, connected_ago: float, heartbeat_ago: float, source: str = "livekit"
) -> calls_db.Call:
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn)
        call = await calls_db.open_call(
            conn,
            call_sid="CA" + os.urandom(8).hex(),
            workspace_id=ws.id,
            channel_id=None,
            agent_id=None,
            source=source,  # type: ignore[arg-type]
            from_number="+15550001111",
            to_number=OUR_NUMBER,
        )
        now = datetime.now(UTC)
        await calls_db.mark_connected(conn, call.call_sid, now - timedelta(seconds=connected_ago))
        await conn.execute(
            "update calls set updated_at = $2 where call_sid = $1",
            call.call_sid,
            now - timedelta(seconds=heartbeat_ago),
        )
    return call


async def test_sweeper_charges_a_crashed_workers_call_once_up_to_its_last_heartbeat(
    pool: asyncpg.Pool,
) -> None:
    crashed = await open_livekit_call(pool, connected_ago=200, heartbeat_ago=100)  # 100 s live
    alive = await open_livekit_call(pool, connected_ago=200, heartbeat_ago=1)
    bridged = await open_livekit_call(pool, connected_ago=200, heartbeat_ago=100, source="twilio")

    async with pool.acquire() as conn:
        first = await calls_db.close_stale_calls(conn, stale_after_seconds=90)
        again = await calls_db.close_stale_calls(conn, stale_after_seconds=90)
        closed = await calls_db.get_call(conn, crashed.call_sid)
        still_alive = await calls_db.get_call(conn, alive.call_sid)
        twilio_call = await calls_db.get_call(conn, bridged.call_sid)

    assert [c.call_sid for c in first] == [crashed.call_sid]
    assert first[0].charge is not None and first[0].charge.quantity == 2  # 100 s -> 2 minutes
    assert again == []
    assert closed is not None and closed.ended_at is not None
    assert closed.duration_seconds == 100
    assert still_alive is not None and still_alive.ended_at is None
    # Twilio's own status callback closes gateway calls; the worker sweeper leaves them alone.
    assert twilio_call is not None and twilio_call.ended_at is None
    charges = await pool.fetch("select idempotency_key from charges")
    assert [c["idempotency_key"] for c in charges] == [f"voice_minutes:{crashed.call_sid}"]


@pytest.fixture
def spare_workers(
    livekit: LiveKitServer,
    openai_standin: OpenAIStandIn,
    pg_dsn: str,
    _migrated: str,
    data_dir: Path,
    s3_endpoint: str,
    recordings_bucket: str,
) -> Iterator[Any]:
    """Start extra worker processes under their own agent name (the shared one never sees them)."""
    started: list[WorkerProcess] = []

    def start(agent_name: str, **extra: str) -> WorkerProcess:
        port = free_port()
        env = worker_env(
            livekit=livekit,
            openai_base_url=openai_standin.base_url,
            pg_dsn=pg_dsn,
            data_dir=data_dir,
            s3_endpoint=s3_endpoint,
            health_port=port,
            extra={"WORKER_AGENT_NAME": agent_name, **extra},
        )
        process = start_worker(env, port, new_session=True)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


async def test_worker_killed_mid_call_leaves_a_call_the_next_start_closes_and_charges(
    pool: asyncpg.Pool, openai_standin: OpenAIStandIn, calls: CallFactory, spare_workers: Any
) -> None:
    openai_standin.reset()
    line = await voice_line(pool)
    openai_standin.script_transcripts("Where is my parcel?")
    openai_standin.script_chat("Your parcel arrives tomorrow.")
    settings = {"WORKER_STALE_CALL_SECONDS": "3", "WORKER_SWEEP_INTERVAL_SECONDS": "1"}
    doomed = spare_workers("wassla-voice-crash", **settings)
    phone, call_sid = await calls.dial(called_number=OUR_NUMBER, agent_name="wassla-voice-crash")
    greeted_at = await phone.wait_agent_speaking(after=0.0, within=30)
    await phone.wait_agent_quiet(after=greeted_at)
    phone.say(espeak_pcm("Where is my parcel?"))
    spoke_until = await phone.finish_saying()
    answered_at = await phone.wait_agent_speaking(after=spoke_until, within=30)
    await phone.wait_agent_quiet(after=answered_at)
    spoken = [
        ("assistant", "Hello, you reached Acme."),
        ("user", "Where is my parcel?"),
        ("assistant", "Your parcel arrives tomorrow."),
    ]

    async def transcript() -> list[tuple[str, str]] | None:
        rows = [(r["role"], r["body"]) for r in await messages_of(pool, call_sid)]
        return rows if rows == spoken else None

    await eventually(transcript, within=20, what="the transcript up to the kill")
    async with pool.acquire() as conn:
        live = await calls_db.get_call(conn, call_sid)
    assert live is not None and live.ended_at is None

    os.killpg(doomed.process.pid, signal.SIGKILL)  # the worker and its job processes
    doomed.process.wait(timeout=10)
    killed_at = datetime.now(UTC)
    sweeper = spare_workers("wassla-voice-crash", **settings)  # the next start sweeps

    call = await ended_call(pool, call_sid, within=30)
    assert call.ended_at is not None and call.ended_at <= killed_at  # its last heartbeat
    # The transcript to the kill is kept, and closed by the sweep, not by the dead worker.
    assert [(r["role"], r["body"]) for r in await messages_of(pool, call_sid)] == spoken

    def swept() -> list[str]:
        return [
            line
            for line in sweeper.log().splitlines()
            if '"call.stale_closed"' in line and call_sid in line
        ]

    await eventually(swept, within=10, what="the sweep's log line")
    charges = await pool.fetch(
        "select quantity, idempotency_key from charges where workspace_id = $1",
        line["workspace"].id,
    )
    assert [(c["quantity"], c["idempotency_key"]) for c in charges] == [
        (1, f"voice_minutes:{call_sid}")
    ]
    assert len(swept()) == 1  # closed once, though the sweep ran again since


async def test_sigterm_stops_taking_calls_but_lets_the_live_call_finish(
    pool: asyncpg.Pool, openai_standin: OpenAIStandIn, calls: CallFactory, spare_workers: Any
) -> None:
    openai_standin.reset()
    line = await voice_line(pool)
    openai_standin.script_transcripts("Are you still there?")
    openai_standin.script_chat("Yes, I am still here.")
    draining = spare_workers("wassla-voice-drain")
    phone, call_sid = await calls.dial(called_number=OUR_NUMBER, agent_name="wassla-voice-drain")
    greeted_at = await phone.wait_agent_speaking(after=0.0, within=30)
    await phone.wait_agent_quiet(after=greeted_at)

    draining.process.send_signal(signal.SIGTERM)
    await asyncio.sleep(1.0)
    assert draining.process.poll() is None  # still serving the live call

    # A new call is not taken by the draining worker.
    late_phone, late_sid = await calls.dial(
        called_number=OUR_NUMBER, agent_name="wassla-voice-drain"
    )

    # The live call goes on: the caller is heard and answered.
    phone.say(espeak_pcm("Are you still there?"))
    spoke_until = await phone.finish_saying()
    await phone.wait_agent_speaking(after=spoke_until, within=20)
    assert late_phone.agent_speaking_at(0.0) is None
    async with pool.acquire() as conn:
        assert await calls_db.get_call(conn, late_sid) is None

    await phone.hang_up()
    await ended_call(pool, call_sid)
    returncode = await asyncio.to_thread(draining.process.wait, 30)
    assert returncode == 0
    assert "draining worker" in draining.log()
    charged = await pool.fetchval(
        "select quantity from charges where workspace_id = $1", line["workspace"].id
    )
    assert charged == 1
