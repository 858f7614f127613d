"""The voice worker against a real livekit-server, real Postgres, moto S3 and the OpenAI stand-in.

One worker process serves every test here; each test is one phone call in a fresh room.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from shared import calls as calls_db
from shared.models import BillingMode
from shared.settings import Settings
from tests.standins.openai_api import ChatScript, OpenAIStandIn
from tests.support import factories
from tests.support.audio import espeak_pcm
from tests.support.calls import ended_call
from tests.support.livekit_tap import LiveKitTap
from tests.support.polling import eventually
from tests.support.worker_process import WorkerProcess, recordings_store
from tests.worker.conftest import CallFactory
from worker.recording import opus_input_rate

OUR_NUMBER = "+15557654321"
WITHIN = 20.0  # how long these tests wait for a row the call writes


async def voice_line(
    pool: asyncpg.Pool,
    *,
    billing_mode: BillingMode = BillingMode.LIVE,
    plan: str = "starter",
    **agent_fields: Any,
) -> dict[str, Any]:
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn, billing_mode=billing_mode, plan=plan)
        fields = {"greeting": "Hello, you reached Acme.", "modality": "voice", **agent_fields}
        agent = await factories.agent(conn, ws.id, **fields)
        channel = await factories.channel(
            conn, ws.id, kind="voice", number=OUR_NUMBER, agent_id=agent.id
        )
    return {"workspace": ws, "agent": agent, "channel": channel}


async def messages_of(pool: asyncpg.Pool, call_sid: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        """
        select m.role, m.body, m.interrupted, m.provider_id, m.created_at from messages m
        join calls c on c.conversation_id = m.conversation_id
        where c.call_sid = $1 order by m.id
        """,
        call_sid,
    )


@pytest.fixture
def standin(openai_standin: OpenAIStandIn) -> OpenAIStandIn:
    openai_standin.reset()
    return openai_standin


async def test_sip_call_is_greeted_answered_transcribed_live_recorded_and_charged_once(
    pool: asyncpg.Pool,
    standin: OpenAIStandIn,
    calls: CallFactory,
    s3_endpoint: str,
) -> None:
    line = await voice_line(pool, language="en-US", voice="nova")
    standin.script_transcripts("I would like to know my order status.")
    standin.script_chat("Your order is on its way and arrives tomorrow.")

    phone, call_sid = await calls.dial(called_number=OUR_NUMBER)
    greeted_at = await phone.wait_agent_speaking(after=0.0, within=30)
    await phone.wait_agent_quiet(after=greeted_at)
    phone.say(espeak_pcm("Hello, I would like to know my order status please."))
    spoke_until = await phone.finish_saying()
    answered_at = await phone.wait_agent_speaking(after=spoke_until, within=20)
    assert answered_at > spoke_until

    # Transcript rows exist while the call is still live, not only at the end.
    rows = await eventually(
        lambda: _both_roles(pool, call_sid),
        within=WITHIN,
        what="user and assistant transcript rows",
    )
    assert not phone.hung_up
    bodies = [(r["role"], r["body"]) for r in rows]
    assert ("assistant", "Hello, you reached Acme.") in bodies
    assert ("user", "I would like to know my order status.") in bodies
    assert all(r["provider_id"].startswith(f"{call_sid}:") for r in rows)
    async with pool.acquire() as conn:
        live = await calls_db.get_call(conn, call_sid)
    assert live is not None and live.ended_at is None and live.connected_at is not None

    # The real plugin clients called the stand-in: STT heard audio, TTS used the agent's voice.
    assert standin.transcription_requests and standin.transcription_requests[0]["audio_bytes"] > 0
    assert {r["body"]["voice"] for r in standin.speech_requests} == {"nova"}
    assert standin.chat_requests

    await phone.wait_agent_quiet(after=answered_at)
    await phone.hang_up()
    call = await ended_call(pool, call_sid)
    assert call.duration_seconds is not None and call.duration_seconds < 60

    charges = await pool.fetch(
        "select kind, quantity, amount_minor, idempotency_key from charges where workspace_id = $1",
        line["workspace"].id,
    )
    assert [(c["kind"], c["quantity"], c["idempotency_key"]) for c in charges] == [
        ("voice_minutes", 1, f"voice_minutes:{call_sid}")
    ]
    assert charges[0]["amount_minor"] == 9  # starter plan: 9 cents a minute

    recording = await eventually(
        lambda: pool.fetchrow(
            "select bucket_key, content_type, size_bytes from recordings where call_id = $1",
            call.id,
        ),
        within=WITHIN,
        what="recording row",
    )
    data = await recordings_store(s3_endpoint).get(recording["bucket_key"])
    assert recording["content_type"] == "audio/ogg"
    assert data[:4] == b"OggS" and len(data) == recording["size_bytes"] > 1000
    # Recorded at the phone-audio rate from settings, not the framework's fixed 48 kHz.
    assert opus_input_rate(data) == Settings().worker.recording_sample_rate == 16000
    count = await pool.fetchval("select count(*) from recordings where call_id = $1", call.id)
    assert count == 1


async def _both_roles(pool: asyncpg.Pool, call_sid: str) -> list[asyncpg.Record] | None:
    rows = await messages_of(pool, call_sid)
    roles = {r["role"] for r in rows}
    return rows if {"user", "assistant"} <= roles and len(rows) >= 3 else None


async def test_an_agent_with_a_phone_voice_speaks_a_like_openai_voice_on_the_worker(
    pool: asyncpg.Pool, standin: OpenAIStandIn, calls: CallFactory
) -> None:
    # Polly.Joanna-Neural is valid for the agent (the TwiML loop speaks it); OpenAI's TTS does
    # not know it, so the worker must speak a same-gender OpenAI voice, never send it as is.
    await voice_line(pool, language="en-US", voice="Polly.Joanna-Neural")

    phone, _ = await calls.dial(called_number=OUR_NUMBER)
    greeted_at = await phone.wait_agent_speaking(after=0.0, within=30)
    await phone.wait_agent_quiet(after=greeted_at)
    await phone.hang_up()

    assert {r["body"]["voice"] for r in standin.speech_requests} == {"coral"}


async def test_worker_health_endpoint_answers_ok(worker: WorkerProcess) -> None:
    status, body = await asyncio.to_thread(worker.health)
    assert (status, body.strip()) == (200, "OK")


async def assert_refused_without_ai_spend(
    pool: asyncpg.Pool, standin: OpenAIStandIn, calls: CallFactory, *, called_number: str
) -> str:
    phone, call_sid = await calls.dial(called_number=called_number)
    heard_at = await phone.wait_agent_speaking(after=0.0, within=30)  # the bundled clip
    await phone.wait_hung_up(within=30)  # the room was deleted
    assert heard_at > 0
    assert standin.chat_requests == []
    assert standin.transcription_requests == []
    assert standin.speech_requests == []
    assert await pool.fetchval("select count(*) from charges") == 0
    return call_sid


async def test_unknown_number_hears_a_short_message_and_the_call_ends_without_ai_spend(
    pool: asyncpg.Pool, standin: OpenAIStandIn, calls: CallFactory
) -> None:
    await voice_line(pool)
    call_sid = await assert_refused_without_ai_spend(
        pool, standin, calls, called_number="+15550009999"
    )
    assert await pool.fetchval("select count(*) from calls where call_sid = $1", call_sid) == 0


async def test_infra_only_workspace_gets_no_ai_spend_on_a_voice_call(
    pool: asyncpg.Pool, standin: OpenAIStandIn, calls: CallFactory
) -> None:
    await voice_line(pool, billing_mode=BillingMode.INFRA_ONLY)
    await assert_refused_without_ai_spend(pool, standin, calls, called_number=OUR_NUMBER)
    assert await pool.fetchval("select count(*) from messages") == 0


async def test_text_only_agent_does_not_take_a_voice_room(
    pool: asyncpg.Pool, standin: OpenAIStandIn, calls: CallFactory
) -> None:
    await voice_line(pool, modality="text")
    await assert_refused_without_ai_spend(pool, standin, calls, called_number=OUR_NUMBER)


async def test_caller_saying_goodbye_gets_a_goodbye_and_the_call_ends_and_is_charged(
    pool: asyncpg.Pool, standin: OpenAIStandIn, calls: CallFactory
) -> None:
    line = await voice_line(pool)
    standin.script_transcripts("That is all, goodbye.")
    standin.script_chat(ChatScript("", tool_call="end_call"))

    phone, call_sid = await calls.dial(called_number=OUR_NUMBER)
    greeted_at = await phone.wait_agent_speaking(after=0.0, within=30)
    await phone.wait_agent_quiet(after=greeted_at)
    phone.say(espeak_pcm("That is all, goodbye."))
    spoke_until = await phone.finish_saying()
    await phone.wait_agent_speaking(after=spoke_until, within=20)  # the goodbye line
    await phone.wait_hung_up(within=30)

    call = await ended_call(pool, call_sid)
    assert call.status == "completed"
    rows = await messages_of(pool, call_sid)
    assert rows[-1]["role"] == "assistant" and "Goodbye" in rows[-1]["body"]
    charged = await pool.fetchval(
        "select quantity from charges where workspace_id = $1", line["workspace"].id
    )
    assert charged == 1


async def test_caller_talking_over_a_long_reply_stops_the_agent_and_the_reply_is_stored_cut(
    pool: asyncpg.Pool, standin: OpenAIStandIn, calls: CallFactory
) -> None:
    await voice_line(pool)
    long_reply = " ".join(["Our store is open every day from nine to five."] * 8)
    standin.script_transcripts("Tell me about your store.", "Wait, stop please.")
    standin.script_chat(long_reply, "Of course, go ahead.")

    phone, call_sid = await calls.dial(called_number=OUR_NUMBER)
    greeted_at = await phone.wait_agent_speaking(after=0.0, within=30)
    await phone.wait_agent_quiet(after=greeted_at)
    phone.say(espeak_pcm("Tell me about your store."))
    spoke_until = await phone.finish_saying()
    reply_at = await phone.wait_agent_speaking(after=spoke_until, within=20)
    await asyncio.sleep(1.5)
    onset = phone.say(espeak_pcm("Wait, wait, stop please, I have a question."))
    stopped_at = await phone.wait_agent_quiet(after=onset, quiet=0.8, within=20)

    # The reply had ~25 s of audio left; the agent stopped while the caller was talking.
    reply_seconds = len(long_reply) * standin.tts_seconds_per_char
    assert stopped_at - reply_at < reply_seconds / 2
    assert stopped_at < (await phone.finish_saying())

    rows = await eventually(
        lambda: _interrupted_reply(pool, call_sid), within=WITHIN, what="interrupted reply row"
    )
    assert len(rows["body"]) < len(long_reply)
    assert long_reply.startswith(rows["body"][:20])


async def _interrupted_reply(pool: asyncpg.Pool, call_sid: str) -> asyncpg.Record | None:
    for row in await messages_of(pool, call_sid):
        if row["role"] == "assistant" and row["interrupted"]:
            return row
    return None


async def test_hand_off_request_transfers_the_sip_caller_and_marks_the_conversation(
    pool: asyncpg.Pool, standin: OpenAIStandIn, calls: CallFactory, livekit_tap: LiveKitTap
) -> None:
    await voice_line(pool, handoff_number="+15559876543")
    livekit_tap.transfers.clear()
    standin.script_transcripts("I want to talk to a person.")
    standin.script_chat(ChatScript("", tool_call="transfer_to_human"))

    phone, call_sid = await calls.dial(called_number=OUR_NUMBER)
    greeted_at = await phone.wait_agent_speaking(after=0.0, within=30)
    await phone.wait_agent_quiet(after=greeted_at)
    phone.say(espeak_pcm("I want to talk to a person."))
    spoke_until = await phone.finish_saying()
    await phone.wait_agent_speaking(after=spoke_until, within=20)  # "transferring you"

    async def transferred() -> list[Any] | None:
        return list(livekit_tap.transfers) or None

    transfers = await eventually(transferred, within=WITHIN, what="the SIP transfer request")
    assert [(t.transfer_to, t.participant_identity) for t in transfers] == [
        ("tel:+15559876543", "sip_+15550001111")
    ]
    call = await ended_call(pool, call_sid)
    handed_off = await pool.fetchval(
        "select handed_off from conversations where id = $1", call.conversation_id
    )
    assert handed_off is True


async def test_hand_off_without_a_number_keeps_the_caller_with_the_agent(
    pool: asyncpg.Pool, standin: OpenAIStandIn, calls: CallFactory, livekit_tap: LiveKitTap
) -> None:
    await voice_line(pool, handoff_number=None)
    livekit_tap.transfers.clear()
    standin.script_transcripts("I want to talk to a person.")
    standin.script_chat(
        ChatScript("", tool_call="transfer_to_human"), "Sorry, nobody is available right now."
    )

    phone, call_sid = await calls.dial(called_number=OUR_NUMBER)
    greeted_at = await phone.wait_agent_speaking(after=0.0, within=30)
    await phone.wait_agent_quiet(after=greeted_at)
    phone.say(espeak_pcm("I want to talk to a person."))
    spoke_until = await phone.finish_saying()
    await phone.wait_agent_speaking(after=spoke_until, within=20)

    async def apology() -> list[asyncpg.Record] | None:
        rows = await messages_of(pool, call_sid)
        return rows if any("nobody is available" in r["body"] for r in rows) else None

    await eventually(apology, within=WITHIN, what="the agent's apology")
    # The tool told the model no human is available; the model's request carried that.
    tool_outputs = [
        m.get("content")
        for r in standin.chat_requests
        for m in r["body"]["messages"]
        if m.get("role") == "tool"
    ]
    assert any("No human colleague is available" in (t or "") for t in tool_outputs)
    assert livekit_tap.transfers == []
    assert not phone.hung_up


async def test_playground_session_talks_to_the_named_agent_as_a_test_conversation(
    pool: asyncpg.Pool, standin: OpenAIStandIn, calls: CallFactory, livekit_tap: LiveKitTap
) -> None:
    line = await voice_line(pool, handoff_number="+15559876543")
    livekit_tap.transfers.clear()
    standin.script_transcripts("Can I talk to a person?")
    standin.script_chat(
        ChatScript("", tool_call="transfer_to_human"), "A person is not available in this test."
    )

    phone, _room = await calls.open_playground(agent_id=str(line["agent"].id))
    greeted_at = await phone.wait_agent_speaking(after=0.0, within=30)
    await phone.wait_agent_quiet(after=greeted_at)
    phone.say(espeak_pcm("Can I talk to a person?"))
    spoke_until = await phone.finish_saying()
    await phone.wait_agent_speaking(after=spoke_until, within=20)

    async def conversation() -> asyncpg.Record | None:
        return await pool.fetchrow(
            "select id, kind, is_test, handed_off from conversations where workspace_id = $1",
            line["workspace"].id,
        )

    conv = await eventually(conversation, within=WITHIN, what="the playground conversation")
    assert (conv["kind"], conv["is_test"], conv["handed_off"]) == ("playground", True, False)

    async def told_unavailable() -> bool:
        rows = await pool.fetch("select body from messages where conversation_id = $1", conv["id"])
        return any("not available in this test" in r["body"] for r in rows)

    await eventually(told_unavailable, within=WITHIN, what="the unavailable hand-off reply")
    assert livekit_tap.transfers == []
    assert await pool.fetchval("select count(*) from calls") == 0
    await phone.hang_up()
    assert await pool.fetchval("select count(*) from charges") == 0


async def test_playground_without_a_known_agent_is_turned_away_without_ai_spend(
    pool: asyncpg.Pool, standin: OpenAIStandIn, calls: CallFactory
) -> None:
    phone, _room = await calls.open_playground(agent_id="00000000-0000-0000-0000-000000000000")
    await phone.wait_agent_speaking(after=0.0, within=30)
    await phone.wait_hung_up(within=30)
    assert standin.chat_requests == [] and standin.speech_requests == []


async def test_a_short_backchannel_over_the_reply_is_a_false_interruption_and_speech_resumes(
    pool: asyncpg.Pool, standin: OpenAIStandIn, calls: CallFactory
) -> None:
    await voice_line(pool)
    long_reply = " ".join(["Our store is open every day from nine to five."] * 6)
    # The backchannel transcribes to nothing: no words, so no real interruption.
    standin.script_transcripts("Tell me about your store.", "")
    standin.script_chat(long_reply)

    phone, call_sid = await calls.dial(called_number=OUR_NUMBER)
    greeted_at = await phone.wait_agent_speaking(after=0.0, within=30)
    await phone.wait_agent_quiet(after=greeted_at)
    phone.say(espeak_pcm("Tell me about your store."))
    spoke_until = await phone.finish_saying()
    await phone.wait_agent_speaking(after=spoke_until, within=20)
    await asyncio.sleep(1.5)
    phone.say(espeak_pcm("uh huh, uh huh"))
    backchannel_end = await phone.finish_saying()

    # The agent's reply goes on after the backchannel (resumed), and is stored whole.
    await phone.wait_agent_speaking(after=backchannel_end + 0.5, within=10)

    async def full_reply() -> asyncpg.Record | None:
        for row in await messages_of(pool, call_sid):
            if row["role"] == "assistant" and row["body"].startswith("Our store"):
                return row
        return None

    row = await eventually(full_reply, within=40, what="the resumed reply row")
    # The VAD did hear the backchannel as speech (it was sent to STT), yet no cut was made.
    assert len(standin.transcription_requests) >= 2
    assert row["interrupted"] is False
    assert row["body"] == long_reply
