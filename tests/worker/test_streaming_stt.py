"""Streaming transcription: the worker streams the caller's audio to OpenAI's realtime
transcription websocket (the stand-in's, tests/standins/openai_realtime.py), so interim
transcripts reach the room while the caller speaks and the final one is stored as the user
turn; OPENAI_STT_STREAMING=false still answers calls over /audio/transcriptions.

What a caller's app sees is the room's `lk.transcription` text streams, which the session
publishes for the caller's track: interim segments (`lk.transcription_final` "false") and
the final one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from livekit import rtc

from shared.settings import Settings
from tests.standins.openai_api import OpenAIStandIn
from tests.support.audio import espeak_pcm
from tests.support.livekit_server import LiveKitServer
from tests.support.polling import eventually
from tests.support.processes import free_port
from tests.support.worker_process import WorkerProcess, start_worker, worker_env
from tests.worker import test_voice_calls as voice_calls
from tests.worker.conftest import CallFactory
from tests.worker.phone import Phone
from tests.worker.test_voice_calls import OUR_NUMBER, messages_of, voice_line

HEARD = "I would like to know my order status."
SAID = "Hello, I would like to know my order status please."
TOPIC = "lk.transcription"
BATCH_AGENT = "wassla-voice-batch-stt"


@dataclass
class Segment:
    at: float  # monotonic time its stream opened at the caller
    text: str
    final: bool


@dataclass
class CallerTranscripts:
    """The caller's own transcription segments, as the room streams them to the caller."""

    track_sid: str
    segments: list[Segment] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def on_stream(self, reader: rtc.TextStreamReader, _sender: str) -> None:
        at = time.monotonic()
        attributes = reader.info.attributes or {}
        if attributes.get("lk.transcribed_track_id") != self.track_sid:
            return  # the agent's own speech

        async def read() -> None:
            text = await reader.read_all()
            self.segments.append(
                Segment(at, text, attributes.get("lk.transcription_final") == "true")
            )

        task = asyncio.ensure_future(read())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def final(self) -> Segment | None:
        return next((s for s in self.segments if s.final), None)


def listen(phone: Phone) -> CallerTranscripts:
    (publication,) = phone.room.local_participant.track_publications.values()
    transcripts = CallerTranscripts(track_sid=publication.sid)
    phone.room.register_text_stream_handler(TOPIC, transcripts.on_stream)
    return transcripts


@pytest.fixture
def standin(openai_standin: OpenAIStandIn) -> OpenAIStandIn:
    openai_standin.reset()
    return openai_standin


@dataclass
class ModuleWorkers:
    """Workers of this module, each under an agent name of its own, started when first used."""

    env: dict[str, Any]
    started: dict[str, WorkerProcess] = field(default_factory=dict)

    def start(self, agent_name: str, **extra: str) -> WorkerProcess:
        if agent_name not in self.started:
            port = free_port()
            env = worker_env(
                **self.env, health_port=port, extra={"WORKER_AGENT_NAME": agent_name, **extra}
            )
            self.started[agent_name] = start_worker(env, port)
        return self.started[agent_name]


@pytest.fixture(scope="module")
def extra_workers(
    livekit: LiveKitServer,
    openai_standin: OpenAIStandIn,
    pg_dsn: str,
    _migrated: str,
    data_dir: Path,
    s3_endpoint: str,
    recordings_bucket: str,
) -> Iterator[ModuleWorkers]:
    workers = ModuleWorkers(
        env={"livekit": livekit, "openai_base_url": openai_standin.base_url, "pg_dsn": pg_dsn,
             "data_dir": data_dir, "s3_endpoint": s3_endpoint}
    )  # fmt: skip
    yield workers
    for process in workers.started.values():
        process.stop()


@dataclass
class NamedAgentCalls(CallFactory):
    """Calls dispatched to one of this module's workers (by its agent name)."""

    agent: str = ""

    async def dial(
        self,
        *,
        called_number: str,
        caller_number: str = "+15550001111",
        call_sid: str | None = None,
        agent_name: str | None = None,
    ) -> tuple[Phone, str]:
        return await super().dial(
            called_number=called_number,
            caller_number=caller_number,
            call_sid=call_sid,
            agent_name=agent_name or self.agent,
        )


async def _calls_to(
    livekit: LiveKitServer, worker: WorkerProcess, agent: str
) -> AsyncIterator[NamedAgentCalls]:
    factory = NamedAgentCalls(livekit=livekit, phones=[], agent=agent)
    yield factory
    for phone in factory.phones:
        await phone.hang_up()
    await worker.wait_idle()  # the next test truncates the tables


@pytest.fixture
async def batch_calls(
    livekit: LiveKitServer, extra_workers: ModuleWorkers
) -> AsyncIterator[NamedAgentCalls]:
    """Calls to a worker with OPENAI_STT_STREAMING=false."""
    agent = BATCH_AGENT
    worker = extra_workers.start(agent, OPENAI_STT_STREAMING="false")
    async for factory in _calls_to(livekit, worker, agent):
        yield factory


@pytest.fixture
async def live_calls(
    livekit: LiveKitServer, extra_workers: ModuleWorkers
) -> AsyncIterator[NamedAgentCalls]:
    """Calls to a worker on a natively streaming model (the client commits each utterance)."""
    agent = "wassla-voice-live-stt"
    worker = extra_workers.start(agent, OPENAI_STT_MODEL="gpt-live-transcribe")
    async for factory in _calls_to(livekit, worker, agent):
        yield factory


async def _greeted_then_say(phone: Phone, words: str) -> tuple[float, float]:
    """Wait out the greeting, say `words`; returns when the speech started and ended."""
    greeted_at = await phone.wait_agent_speaking(after=0.0, within=30)
    await phone.wait_agent_quiet(after=greeted_at)
    started = phone.say(espeak_pcm(words))
    return started, await phone.finish_saying()


async def _stored_user_turns(pool: asyncpg.Pool, call_sid: str) -> list[str] | None:
    rows = await messages_of(pool, call_sid)
    users = [r["body"] for r in rows if r["role"] == "user"]
    return users if users and any(r["role"] == "assistant" for r in rows[1:]) else None


async def test_a_streaming_model_sends_interim_transcripts_while_the_caller_speaks(
    pool: asyncpg.Pool, standin: OpenAIStandIn, live_calls: NamedAgentCalls
) -> None:
    await voice_line(pool, language="en-US")
    standin.script_transcripts(HEARD)
    standin.script_chat("Your order is on its way.")

    phone, call_sid = await live_calls.dial(called_number=OUR_NUMBER)
    transcripts = listen(phone)
    _, spoke_until = await _greeted_then_say(phone, SAID)
    final = await eventually(transcripts.final, within=20, what="the final transcript segment")
    await phone.wait_agent_speaking(after=spoke_until, within=20)

    # Interim text reached the caller's room while they were still speaking, growing
    # towards the final transcript, which came after.
    during = [s for s in transcripts.segments if not s.final and s.at < spoke_until]
    assert during, transcripts.segments
    assert all(HEARD.startswith(s.text) and s.text != HEARD for s in during)
    assert final.text == HEARD and final.at > during[-1].at
    users = await eventually(
        lambda: _stored_user_turns(pool, call_sid), within=20, what="the stored turns"
    )
    assert users == [HEARD]

    # Over the realtime websocket, never the upload endpoint; the session left endpointing
    # to the client (this model has none), which committed the utterance.
    (connection,) = [c for c in standin.realtime_connections if c["session_updates"]]
    assert connection["query"]["intent"] == "transcription"
    input_config = connection["session_updates"][0]["audio"]["input"]
    assert input_config["transcription"]["model"] == "gpt-live-transcribe"
    assert "turn_detection" not in input_config
    assert [r["realtime"] for r in standin.transcription_requests] == [True]
    assert standin.transcription_requests[0]["text"] == HEARD


async def test_the_default_model_streams_and_its_final_transcript_is_the_stored_user_turn(
    pool: asyncpg.Pool, standin: OpenAIStandIn, calls: CallFactory, worker: WorkerProcess
) -> None:
    await voice_line(pool, language="en-US")
    standin.script_transcripts(HEARD)
    standin.script_chat("Your order is on its way.")

    phone, call_sid = await calls.dial(called_number=OUR_NUMBER)
    transcripts = listen(phone)
    _, spoke_until = await _greeted_then_say(phone, SAID)
    final = await eventually(transcripts.final, within=20, what="the final transcript segment")
    answered_at = await phone.wait_agent_speaking(after=spoke_until, within=20)

    # gpt-4o-mini-transcribe transcribes what the server VAD committed: its interim text
    # comes after the speech, still before the final, which came before the answer.
    interims = [s for s in transcripts.segments if not s.final]
    assert interims and interims[0].at <= final.at and final.text == HEARD
    assert final.at < answered_at
    users = await eventually(
        lambda: _stored_user_turns(pool, call_sid), within=20, what="the stored turns"
    )
    assert users == [HEARD], standin.transcription_requests

    # The server's VAD closes an utterance after OPENAI_STT_SILENCE_MS, before ours ends speech.
    (connection,) = [c for c in standin.realtime_connections if c["session_updates"]]
    turn_detection = connection["session_updates"][0]["audio"]["input"]["turn_detection"]
    assert turn_detection["type"] == "server_vad"
    assert turn_detection["silence_duration_ms"] == Settings().openai.stt_silence_ms
    assert Settings().openai.stt_silence_ms < Settings().worker.vad_min_silence * 1000
    assert connection["query"]["model"] == "gpt-4o-mini-transcribe"
    assert connection["audio_bytes"] > 0 and connection["errors"] == []
    assert [r["realtime"] for r in standin.transcription_requests] == [True]
    (mode,) = worker.events("worker.stt_mode")
    assert (mode["mode"], mode["model"]) == ("realtime", "gpt-4o-mini-transcribe")


async def test_a_refused_realtime_socket_is_retried_logged_and_the_caller_still_heard(
    pool: asyncpg.Pool, standin: OpenAIStandIn, calls: CallFactory, worker: WorkerProcess
) -> None:
    await voice_line(pool, language="en-US")
    standin.refuse_realtime(503)
    standin.script_transcripts(HEARD)
    standin.script_chat("Your order is on its way.")

    phone, call_sid = await calls.dial(called_number=OUR_NUMBER)
    _, spoke_until = await _greeted_then_say(phone, SAID)
    await phone.wait_agent_speaking(after=spoke_until, within=20)
    users = await eventually(
        lambda: _stored_user_turns(pool, call_sid), within=20, what="the stored turns"
    )
    assert users == [HEARD], standin.transcription_requests
    refused = [c["refused"] for c in standin.realtime_connections]
    assert refused[0] == 503 and None in refused[1:]

    failures = await eventually(
        lambda: [e for e in worker.events("call.stt_failed") if "HTTP 503" in e["error"]],
        within=10,
        what="the call.stt_failed line",
    )
    assert failures[0]["level"] == "WARNING" and failures[0]["recoverable"] is True
    assert (failures[0]["mode"], failures[0]["error_type"]) == ("realtime", "APIStatusError")


async def test_with_streaming_off_a_call_is_answered_over_the_transcriptions_endpoint(
    pool: asyncpg.Pool,
    standin: OpenAIStandIn,
    batch_calls: NamedAgentCalls,
    s3_endpoint: str,
    extra_workers: ModuleWorkers,
) -> None:
    # The whole call test of tests/worker/test_voice_calls.py, against the fallback worker.
    await voice_calls.test_sip_call_is_greeted_answered_transcribed_live_recorded_and_charged_once(
        pool, standin, batch_calls, s3_endpoint
    )
    assert standin.realtime_connections == []
    assert standin.transcription_requests
    assert not any(r.get("realtime") for r in standin.transcription_requests)
    (mode,) = extra_workers.started[BATCH_AGENT].events("worker.stt_mode")
    assert mode["mode"] == "batch"
