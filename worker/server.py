"""The LiveKit worker: an AgentServer whose one rtc_session answers calls and playgrounds.

Per job: wait for the caller, admit or refuse them (refusal: bundled clip, room deleted, no
AI spend), run the AgentSession, and in `on_session_end` store the recording and charge the
call. The main process sweeps calls a crashed worker left open, at start and periodically.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from functools import lru_cache
from typing import Any

import asyncpg
from livekit import rtc
from livekit.agents import (
    AgentServer,
    AgentSession,
    AutoSubscribe,
    JobContext,
    JobExecutorType,
    JobProcess,
    JobRequest,
    room_io,
)

from shared import calls, db, metrics, provider_ids
from shared.admission import Admitted, Refused, admit_playground, admit_sip_call
from shared.pg import UNAVAILABLE_ERRORS
from shared.settings import Settings
from worker import call_flow, providers, recording, refusal, sdk_warmup
from worker.call_session import CallSession
from worker.caller import Caller, caller_from_participant, playground_agent_id
from worker.voice_agent import VoiceAgent, enforce_max_length

logger = logging.getLogger("worker")

_CALLER_KINDS = [
    rtc.ParticipantKind.PARTICIPANT_KIND_SIP,
    rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD,
]
# The calls of this process by job id, for on_session_end (jobs may share a process).
_CALLS: dict[str, CallSession] = {}
# livekit-server stops dispatching to a worker whose reported load reaches this.
SERVER_TARGET_LOAD = 0.7
# Imported once in the forkserver, so every job process shares these pages copy-on-write
# instead of importing them itself: our code (and with it asyncpg and pydantic), and what the
# openai SDK and its HTTP client import lazily on a call's first request, on the event loop,
# where those imports blocked a call's first turn (figures: bench/README.md).
PRELOAD_MODULES = [
    __name__,
    "worker.preload",  # the VAD, the TLS context, the SDK warm-up: shared by every job process
    "anyio._backends._asyncio",
    "anyio.streams.memory",
    "anyio.streams.stapled",
    "jiter",
    "openai.pagination",
    "openai.lib.streaming.chat",
    "openai.resources.audio.transcriptions",
    "openai.resources.audio.speech",
    "openai.resources.chat.completions",
    "openai.resources.audio.audio",
    "openai.resources.chat.chat",
    "openai.lib._chat_completion_resources",
    "livekit.agents.llm.async_toolset",
    "numpy.fft",
]
# Background tasks of the main process (the sweeper), referenced until they finish.
_SERVER_TASKS: set[asyncio.Task[Any]] = set()


@lru_cache(maxsize=1)
def load_settings() -> Settings:
    """Settings read once per process (job processes inherit the worker's environment)."""
    return Settings()


def prewarm(proc: JobProcess) -> None:
    """Before any job: the VAD, the TLS context and the openai SDK's first-request work
    (inherited from the forkserver when it preloaded them, else done here) and the
    recording rate."""
    settings = load_settings()
    proc.userdata["vad"] = providers.load_vad(settings)
    providers.tls_context()
    sdk_warmup.warm_up()
    recording.use_recording_rate(settings.worker.recording_sample_rate)


async def on_request(request: JobRequest) -> None:
    await request.accept(identity=f"agent-{request.job.id}", name="Wassla")


async def _open_pool(settings: Settings) -> asyncpg.Pool:
    job_settings = settings.changed({"db.pool_min_size": 1, "db.pool_max_size": 3})
    return await db.create_pool(job_settings, require_current_schema=False)


async def entrypoint(ctx: JobContext) -> None:
    settings = load_settings()
    await ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY)
    participant = await ctx.wait_for_participant(kind=_CALLER_KINDS)
    caller = caller_from_participant(participant)
    log = {
        "room": ctx.room.name,
        "sip": caller.is_sip,
        "job": ctx.job.id,
        "call_sid": caller.call_sid,
    }
    try:
        pool = await _open_pool(settings)
    except UNAVAILABLE_ERRORS:
        metrics.DATABASE_UNAVAILABLE.labels("worker_admission").inc()
        logger.exception("worker.db_unavailable", extra=log)
        await _refuse(ctx, "db_unavailable")
        return
    try:
        async with pool.acquire() as conn:
            if caller.is_sip:
                admission = await admit_sip_call(
                    conn,
                    to_number=caller.called_number,
                    from_number=caller.caller_number,
                    call_sid=caller.call_sid
                    or provider_ids.livekit_call_sid(ctx.job.room.sid or ctx.room.name),
                    joined_at=caller.joined_at,
                )
            else:
                agent_id = playground_agent_id(
                    ctx.job.metadata, ctx.room.metadata, settings.worker.playground_agent_id
                )
                admission = await admit_playground(conn, agent_id)
    except UNAVAILABLE_ERRORS:
        await pool.close()
        metrics.DATABASE_UNAVAILABLE.labels("worker_admission").inc()
        logger.exception("worker.db_unavailable", extra=log)
        await _refuse(ctx, "db_unavailable")  # the caller hears why, never dead air
        return
    except BaseException:
        await pool.close()
        raise
    if isinstance(admission, Refused):
        await pool.close()
        logger.info("call.refused", extra={**log, "reason": admission.reason.value})
        await _refuse(ctx, admission.reason.value)
        return
    await _run_session(ctx, settings, pool, admission, caller)


async def _refuse(ctx: JobContext, reason: str) -> None:
    try:
        pcm, rate = await refusal.load_clip()
        await refusal.play_clip(ctx.room, pcm, rate)
    finally:
        await ctx.delete_room()
        ctx.shutdown(reason=f"refused: {reason}")


async def _run_session(
    ctx: JobContext, settings: Settings, pool: asyncpg.Pool, admitted: Admitted, caller: Caller
) -> None:
    call = CallSession(
        settings=settings, pool=pool, admitted=admitted, caller=caller, room_name=ctx.room.name
    )
    _CALLS[ctx.job.id] = call
    built = providers.build_providers(settings, admitted.agent)
    # Shutdown callbacks run after the session has closed and on_session_end has run.
    ctx.add_shutdown_callback(built.aclose)
    agent = VoiceAgent(admitted.agent, call)
    session: AgentSession[None] = AgentSession(
        vad=ctx.proc.userdata.get("vad") or providers.load_vad(settings),
        stt=built.stt,
        llm=built.llm,
        tts=built.tts,
        turn_handling=providers.turn_handling(settings),
        # No AEC warm-up on phone audio: barge-in must work from the first word.
        aec_warmup_duration=None,
        # The caller's silence before "are you still there?" (worker/idle.py).
        user_away_timeout=call_flow.away_timeout(settings, agent),
    )
    call.attach(session)
    await session.start(
        agent,
        room=ctx.room,
        room_options=room_io.RoomOptions(
            participant_identity=caller.identity,
            participant_kinds=_CALLER_KINDS,
            audio_input=providers.audio_input(settings),
            close_on_disconnect=True,
            delete_room_on_close=True,
        ),
        record={"audio": True, "traces": False, "logs": False, "transcript": False},
        # The session host streams every session event to the room for a remote console;
        # a phone has no use for it, and it costs CPU and data packets every call.
        session_host=not call.is_phone_call,
    )
    call.start_heartbeat()
    call_flow.attach(ctx, session, agent, settings)
    if call.is_phone_call:
        call.add_loop(
            asyncio.create_task(
                enforce_max_length(agent, warning_seconds=settings.worker.max_call_warning_seconds),
                name="max_call_length",
            )
        )


async def on_session_end(ctx: JobContext) -> None:
    call = _CALLS.pop(ctx.job.id, None)
    if call is None:
        return
    try:
        report = ctx.make_session_report() if call.session is not None else None
        await call.finish(report)
    finally:
        await call.pool.close()


async def sweep_stale_calls(settings: Settings, pool: asyncpg.Pool) -> int:
    """Close and charge calls whose worker stopped heartbeating; how many were closed."""
    async with pool.acquire() as conn:
        closed = await calls.close_stale_calls(
            conn, stale_after_seconds=settings.worker.stale_call_seconds
        )
    for item in closed:
        logger.info(
            "call.stale_closed",
            extra={
                "call_sid": item.call_sid,
                "minutes": item.charge.quantity if item.charge else 0,
            },
        )
    return len(closed)


async def _sweeper(settings: Settings) -> None:
    pool: asyncpg.Pool | None = None
    while True:
        try:
            if pool is None:
                pool = await db.create_pool(
                    settings.changed({"db.pool_min_size": 1, "db.pool_max_size": 1}),
                    require_current_schema=False,
                )
            await sweep_stale_calls(settings, pool)
        except asyncio.CancelledError:
            if pool is not None:
                await pool.close()
            raise
        except Exception as exc:
            if isinstance(exc, UNAVAILABLE_ERRORS):
                metrics.DATABASE_UNAVAILABLE.labels("worker_sweep").inc()
            logger.exception("worker.sweep_failed")
        await asyncio.sleep(settings.worker.sweep_interval_seconds)


async def _serve_metrics(port: int) -> None:
    """`GET /metrics` for this worker and its job processes (multiprocess mode, set up by
    `python -m worker`), until the worker stops."""
    server = await metrics.serve(port)
    logger.info(
        "worker.metrics_serving",
        extra={"port": port, "multiprocess": metrics.multiprocess_dir() is not None},
    )
    try:
        await asyncio.Event().wait()
    finally:
        server.close()


def call_load(server: AgentServer, max_calls: int) -> float:
    """Load as calls held over capacity, scaled so a full worker reports the server's target.

    The framework's default is CPU usage, which on a small box spikes past the server's
    target whenever a job process starts or exits, and the server then drops dispatches.
    """
    return SERVER_TARGET_LOAD * len(server.active_jobs) / max(max_calls, 1)


def build_server(settings: Settings) -> AgentServer:
    """The AgentServer configured from settings (agent name, health port, drain, executor)."""
    options: dict[str, Any] = {}
    if settings.worker.num_idle_processes is not None:
        options["num_idle_processes"] = settings.worker.num_idle_processes
    server = AgentServer(
        ws_url=settings.livekit.url,
        api_key=settings.livekit.api_key,
        api_secret=settings.livekit.api_secret,
        port=settings.worker.health_port,
        drain_timeout=settings.worker.drain_timeout_seconds,
        load_threshold=SERVER_TARGET_LOAD,
        load_fnc=functools.partial(call_load, max_calls=settings.worker.max_calls),
        job_memory_warn_mb=settings.worker.job_memory_warn_mb,
        job_executor_type=(
            JobExecutorType.THREAD
            if settings.worker.job_executor == "thread"
            else JobExecutorType.PROCESS
        ),
        setup_fnc=prewarm,
        preload_modules=PRELOAD_MODULES,
        **options,
    )
    server.rtc_session(
        entrypoint,
        agent_name=settings.worker.agent_name,
        on_request=on_request,
        on_session_end=on_session_end,
    )

    @server.once("worker_started")
    def _start_sweeper() -> None:
        task = asyncio.create_task(_sweeper(settings), name="stale_call_sweeper")
        _SERVER_TASKS.add(task)
        task.add_done_callback(_SERVER_TASKS.discard)
        if settings.worker.metrics_port is not None:
            serving = asyncio.create_task(
                _serve_metrics(settings.worker.metrics_port), name="metrics_server"
            )
            _SERVER_TASKS.add(serving)
            serving.add_done_callback(_SERVER_TASKS.discard)

    return server
