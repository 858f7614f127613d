"""Voice over TwiML, end to end through the real app: signed webhooks in, TwiML out.

Requests are signed as Twilio signs them (tests/support/twilio_signing.py); the model is the local
OpenAI-compatible stand-in and Twilio's REST API the local Twilio stand-in.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from shared import billing, conversations
from shared.providers.recording_store import S3RecordingStore
from shared.settings import Settings
from tests.conftest import PUBLIC_BASE_URL, TWILIO_ACCOUNT_SID
from tests.standins.openai_api import ChatScript, OpenAIStandIn, tone_pcm, wav_bytes
from tests.standins.twilio_api import TwilioStandIn
from tests.support import factories
from tests.support.gateway import running_gateway
from tests.support.model_faults import MODEL_DEADLINE_SECONDS, MODEL_FAULTS
from tests.support.twilio_signing import post_signed

NUMBER = "+15551234567"
CALLER = "+14155550123"
VOICE_URL = f"{PUBLIC_BASE_URL}/twilio-voice"
BUCKET = "call-recordings-test"


@pytest.fixture
async def settings(base_settings: Settings, s3_endpoint: str) -> Settings:
    """Test settings with recordings in moto's S3 and short voice deadlines."""
    configured = base_settings.changed(
        {
            "recordings.backend": "s3",
            "recordings.bucket": BUCKET,
            "s3.endpoint_url": s3_endpoint,
            "s3.access_key_id": "testing",
            "s3.secret_access_key": "testing",
            "voice.turn_deadline_seconds": 1.0,
            "voice.collect_wait_seconds": 3.0,
            "voice.recording_retry_seconds": 0.01,
        }
    )
    await bucket_store(configured).ensure_bucket()
    return configured


def bucket_store(settings: Settings) -> S3RecordingStore:
    return S3RecordingStore(
        bucket=settings.recordings.bucket,
        endpoint_url=settings.s3.endpoint_url,
        region=settings.s3.region,
        access_key_id=settings.s3.access_key_id,
        secret_access_key=settings.s3.secret_access_key,
    )


class TwilioCall:
    """Plays Twilio's side of one call: signed form posts, TwiML parsed as XML."""

    def __init__(self, client: httpx.AsyncClient, *, to: str = NUMBER) -> None:
        self.client = client
        self.call_sid = "CA" + uuid.uuid4().hex
        self.to = to

    async def post(self, url: str, **fields: str) -> ET.Element:
        response = await self.post_raw(url, **fields)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/xml")
        root = ET.fromstring(response.content)
        assert root.tag == "Response"
        return root

    async def post_raw(self, url: str, **fields: str) -> httpx.Response:
        params = {
            "CallSid": self.call_sid,
            "AccountSid": TWILIO_ACCOUNT_SID,
            "From": CALLER,
            "To": self.to,
            "Direction": "inbound",
            "CallStatus": "in-progress",
            "ApiVersion": "2010-04-01",
            **fields,
        }
        return await post_signed(self.client, url, params)

    async def dial_in(self) -> ET.Element:
        return await self.post(VOICE_URL, CallStatus="ringing")

    async def say_words(self, doc: ET.Element, words: str) -> ET.Element:
        """Answer the document's <Gather> as Twilio does: post SpeechResult to its action."""
        gather = doc.find("Gather")
        assert gather is not None, ET.tostring(doc)
        return await self.post(gather.attrib["action"], SpeechResult=words, Confidence="0.92")

    async def stay_silent(self, doc: ET.Element) -> ET.Element:
        gather = doc.find("Gather")
        assert gather is not None and gather.attrib["actionOnEmptyResult"] == "true"
        return await self.post(gather.attrib["action"])

    async def status(self, status: str, duration: int) -> None:
        await self.post(f"{VOICE_URL}/status", CallStatus=status, CallDuration=str(duration))


def verbs(doc: ET.Element) -> list[str]:
    return [child.tag for child in doc]


def spoken(doc: ET.Element) -> str:
    """The text of the document's <Say>, inside a <Gather> or not."""
    say = doc.find("Gather/Say")
    if say is None:
        say = doc.find("Say")
    assert say is not None and say.text, ET.tostring(doc)
    return say.text


def assert_listens(
    doc: ET.Element, *, turn: int, silent: int = 0, failed: int = 0, language: str = "en-US"
) -> None:
    """A <Gather> of speech or keys for `turn`, followed by a <Redirect> to the same action."""
    assert verbs(doc)[-2:] == ["Gather", "Redirect"], verbs(doc)
    gather = doc.find("Gather")
    assert gather is not None
    assert gather.attrib["input"] == "dtmf speech"
    assert gather.attrib["finishOnKey"] == "#"
    assert gather.attrib["timeout"] == "3"  # the keypad's pause between keys (calls settings)
    assert gather.attrib["language"] == language
    assert gather.attrib["actionOnEmptyResult"] == "true"
    assert gather.attrib["speechTimeout"] == "2"
    action = urlsplit(gather.attrib["action"])
    assert f"{action.scheme}://{action.netloc}{action.path}" == f"{VOICE_URL}/turn"
    expected = {"turn": [str(turn)], "silent": [str(silent)]}
    if failed:
        expected["failed"] = [str(failed)]
    assert parse_qs(action.query) == expected
    redirect = doc.find("Redirect")
    assert redirect is not None and redirect.text == gather.attrib["action"]


@pytest.fixture
async def voice_agent(pool: asyncpg.Pool) -> AsyncIterator[dict[str, object]]:
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn)
        agent = await factories.agent(
            conn, ws.id, greeting="Hi, this is Sara from Acme.", language="en-US"
        )
        channel = await factories.channel(conn, ws.id, kind="voice", agent_id=agent.id)
    yield {"workspace": ws, "agent": agent, "channel": channel}


async def transcript(pool: asyncpg.Pool, call_sid: str) -> list[tuple[str, str]]:
    conversation_id = await pool.fetchval(
        "select conversation_id from calls where call_sid = $1", call_sid
    )
    async with pool.acquire() as conn:
        messages = await conversations.history(conn, conversation_id)
    return [(m.role, m.body) for m in messages]


async def test_whole_call_greets_answers_three_turns_charges_once_and_stores_recording(
    app: FastAPI,
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    settings: Settings,
    voice_agent: dict[str, object],
    openai_standin: OpenAIStandIn,
    twilio_standin: TwilioStandIn,
) -> None:
    openai_standin.script_chat(
        "Your order shipped yesterday.", "It arrives on Friday.", "You're welcome, goodbye!"
    )
    call = TwilioCall(client)

    first = await call.dial_in()
    assert verbs(first) == ["Start", "Gather", "Redirect"]
    recording = first.find("Start/Recording")
    assert recording is not None
    assert recording.attrib["recordingStatusCallback"] == f"{VOICE_URL}/recording-status"
    assert "completed" in recording.attrib["recordingStatusCallbackEvent"]
    assert spoken(first) == "Hi, this is Sara from Acme."
    say = first.find("Gather/Say")
    assert say is not None and say.attrib == {"voice": "Polly.Joanna-Neural", "language": "en-US"}
    assert_listens(first, turn=1)

    doc = await call.say_words(first, "Where is my order?")
    assert spoken(doc) == "Your order shipped yesterday."
    assert_listens(doc, turn=2)
    doc = await call.say_words(doc, "When will it arrive?")
    assert spoken(doc) == "It arrives on Friday."
    assert_listens(doc, turn=3)
    doc = await call.say_words(doc, "Thanks, that's all.")
    assert spoken(doc) == "You're welcome, goodbye!"
    assert_listens(doc, turn=4)

    # The model saw the conversation so far on every turn, in order.
    last_request = openai_standin.chat_requests[-1]["body"]["messages"]
    assert [m["content"] for m in last_request[1:]] == [
        "Hi, this is Sara from Acme.",
        "Where is my order?",
        "Your order shipped yesterday.",
        "When will it arrive?",
        "It arrives on Friday.",
        "Thanks, that's all.",
    ]

    # The caller hangs up; Twilio repeats the status callback.
    await call.status("completed", 125)
    await call.status("completed", 125)

    twilio_standin.recordings["RE" + "1" * 32] = wav_bytes(tone_pcm(0.5, 8000), 8000)
    await call.post(
        f"{VOICE_URL}/recording-status",
        RecordingSid="RE" + "1" * 32,
        RecordingUrl=twilio_standin.recording_url("RE" + "1" * 32),
        RecordingStatus="completed",
        RecordingDuration="124",
        RecordingChannels="2",
        RecordingSource="StartCallRecordingTwiML",
    )
    await app.state.gateway.services.drain()

    assert await transcript(pool, call.call_sid) == [
        ("assistant", "Hi, this is Sara from Acme."),
        ("user", "Where is my order?"),
        ("assistant", "Your order shipped yesterday."),
        ("user", "When will it arrive?"),
        ("assistant", "It arrives on Friday."),
        ("user", "Thanks, that's all."),
        ("assistant", "You're welcome, goodbye!"),
    ]
    conv = await pool.fetchrow(
        "select c.status, c.kind from conversations c join calls k on k.conversation_id = c.id"
        " where k.call_sid = $1",
        call.call_sid,
    )
    assert dict(conv) == {"status": "closed", "kind": "voice"}
    assert await pool.fetchval("select count(*) from conversations") == 1

    ws = voice_agent["workspace"]
    async with pool.acquire() as conn:
        charges = await billing.list_charges(conn, ws.id)  # type: ignore[attr-defined]
    assert [(c["kind"], c["quantity"], c["amount_minor"]) for c in charges] == [
        ("voice_minutes", 3, 27)  # 125 s -> 3 whole minutes at the Starter price of 9
    ]
    balance = await pool.fetchval(
        "select credit_balance_minor from workspaces where id = $1",
        ws.id,  # type: ignore[attr-defined]
    )
    assert balance == 10_000 - 27

    rows = await pool.fetch("select * from recordings")
    assert len(rows) == 1
    row = rows[0]
    conversation_id = await pool.fetchval(
        "select conversation_id from calls where call_sid = $1", call.call_sid
    )
    assert row["conversation_id"] == conversation_id
    assert row["duration_seconds"] == 124
    assert row["bucket_key"] == (
        f"workspaces/{ws.id}/conversations/{conversation_id}/{'RE' + '1' * 32}.wav"  # type: ignore[attr-defined]
    )
    stored = await bucket_store(settings).get(row["bucket_key"])
    assert stored == twilio_standin.recordings["RE" + "1" * 32]


async def test_slow_model_says_filler_then_the_reply_on_the_redirect(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    voice_agent: dict[str, object],
    openai_standin: OpenAIStandIn,
) -> None:
    # The turn deadline is 1 s in these settings; the model takes 1.8 s to start.
    openai_standin.script_chat(ChatScript("Sorry for the wait, it shipped.", first_token_delay=1.8))
    call = TwilioCall(client)
    first = await call.dial_in()

    doc = await call.say_words(first, "Where is my order?")
    assert verbs(doc) == ["Say", "Redirect"]
    assert spoken(doc) == "One moment please."
    redirect = doc.find("Redirect")
    assert redirect is not None and redirect.attrib["method"] == "POST"
    target = urlsplit(redirect.text or "")
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{VOICE_URL}/collect"
    assert parse_qs(target.query) == {"turn": ["1"], "wait": ["1"]}
    # The caller's words were stored before the model answered.
    assert await transcript(pool, call.call_sid) == [
        ("assistant", "Hi, this is Sara from Acme."),
        ("user", "Where is my order?"),
    ]

    doc = await call.post(redirect.text or "")
    assert spoken(doc) == "Sorry for the wait, it shipped."
    assert_listens(doc, turn=2)
    assert len(openai_standin.chat_requests) == 1  # one generation, collected, not restarted
    assert (await transcript(pool, call.call_sid))[-1] == (
        "assistant",
        "Sorry for the wait, it shipped.",
    )


async def test_twilio_retry_of_a_turn_stores_and_generates_once(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    voice_agent: dict[str, object],
    openai_standin: OpenAIStandIn,
) -> None:
    openai_standin.script_chat("First answer.", "A second answer that must not be used.")
    call = TwilioCall(client)
    first = await call.dial_in()
    again = await call.dial_in()  # Twilio retried the incoming-call webhook
    assert ET.tostring(first) == ET.tostring(again)
    one = await call.say_words(first, "Hello?")
    two = await call.say_words(first, "Hello?")
    assert spoken(one) == spoken(two) == "First answer."
    assert len(openai_standin.chat_requests) == 1
    assert await transcript(pool, call.call_sid) == [
        ("assistant", "Hi, this is Sara from Acme."),
        ("user", "Hello?"),
        ("assistant", "First answer."),
    ]
    assert await pool.fetchval("select count(*) from calls") == 1


async def past_fillers(call: TwilioCall, doc: ET.Element) -> ET.Element:
    """Follow the filler's <Redirect>s (the model still answering) to the document that listens."""
    while doc.find("Gather") is None:
        redirect = doc.find("Redirect")
        assert redirect is not None and redirect.text, ET.tostring(doc)
        doc = await call.post(redirect.text)
    return doc


@pytest.mark.parametrize(("scripts", "attempts", "error"), MODEL_FAULTS)
async def test_model_failure_apologises_and_listens_for_the_next_turn(
    settings: Settings,
    voice_agent: dict[str, object],
    openai_standin: OpenAIStandIn,
    pool: asyncpg.Pool,
    caplog: pytest.LogCaptureFixture,
    scripts: list[ChatScript],
    attempts: int,
    error: str,
) -> None:
    openai_standin.script_chat(*scripts)
    quick = settings.changed({"openai.timeout_seconds": MODEL_DEADLINE_SECONDS})
    async with running_gateway(quick) as (_, client):
        call = TwilioCall(client)  # its post() parses every answer: well-formed XML or fail
        doc = await past_fillers(call, await call.say_words(await call.dial_in(), "Hello?"))
    assert spoken(doc) == "Sorry, I had a problem answering that. Could you say it again?"
    assert_listens(doc, turn=2, failed=1)  # counted: failures in a row may hand off
    assert len(openai_standin.chat_requests) == attempts
    assert [role for role, _ in await transcript(pool, call.call_sid)] == ["assistant", "user"]
    [failed] = [r for r in caplog.records if r.msg == "voice.reply_failed"]
    assert error in getattr(failed, "error", "")


async def test_characters_xml_forbids_are_never_spoken_and_the_twiml_stays_well_formed(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    openai_standin: OpenAIStandIn,
) -> None:
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn)
        agent = await factories.agent(conn, ws.id, greeting="Hi\x01, this is Sara\x0b.",
                                      language="en-US")  # fmt: skip
        await factories.channel(conn, ws.id, kind="voice", agent_id=agent.id)
    openai_standin.script_chat("Your order\x01 shipped\x0b today\x1f.")
    call = TwilioCall(client)  # its post() parses every answer: well-formed XML or fail
    greeted = await call.dial_in()
    assert spoken(greeted) == "Hi, this is Sara."
    doc = await call.say_words(greeted, "Where is my order?")
    assert spoken(doc) == "Your order shipped today."
    assert_listens(doc, turn=2)


async def test_max_call_length_says_goodbye_and_hangs_up(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    voice_agent: dict[str, object],
    openai_standin: OpenAIStandIn,
) -> None:
    await pool.execute("update agents set max_call_seconds = 60")
    call = TwilioCall(client)
    first = await call.dial_in()
    await pool.execute(
        "update calls set connected_at = now() - interval '61 seconds' where call_sid = $1",
        call.call_sid,
    )
    doc = await call.say_words(first, "One more question")
    assert verbs(doc) == ["Say", "Hangup"]
    assert "time limit" in spoken(doc)
    assert openai_standin.chat_requests == []


async def test_caller_asking_for_a_human_is_dialled_to_the_handoff_number(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    voice_agent: dict[str, object],
    openai_standin: OpenAIStandIn,
) -> None:
    await pool.execute("update agents set handoff_number = '+15557654321'")
    call = TwilioCall(client)
    doc = await call.say_words(await call.dial_in(), "Can I talk to a human please?")
    assert verbs(doc) == ["Say", "Dial"]
    dial = doc.find("Dial")
    assert dial is not None and (dial.text or "").strip() == "+15557654321"
    assert dial.attrib["action"].startswith(f"{VOICE_URL}/handoff-status?turn=2")
    handed_off = await pool.fetchval(
        "select c.handed_off from conversations c join calls k on k.conversation_id = c.id"
        " where k.call_sid = $1",
        call.call_sid,
    )
    assert handed_off is True
    assert openai_standin.chat_requests == []

    # Nobody picked up: the agent takes the caller back.
    doc = await call.post(dial.attrib["action"], DialCallStatus="no-answer")
    assert_listens(doc, turn=2)
    # The person answered and the call ended: done.
    doc = await call.post(dial.attrib["action"], DialCallStatus="completed")
    assert verbs(doc) == ["Hangup"]


async def test_status_callback_before_the_last_gather_charges_once(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    voice_agent: dict[str, object],
    openai_standin: OpenAIStandIn,
) -> None:
    call = TwilioCall(client)
    first = await call.dial_in()
    await call.status("completed", 61)
    late = await call.say_words(first, "Are you there?")  # the gather posted after hang-up
    assert verbs(late) == ["Hangup"]
    await call.status("completed", 61)
    charges = await pool.fetch("select quantity, amount_minor from charges")
    assert [tuple(c) for c in charges] == [(2, 18)]
    assert openai_standin.chat_requests == []


async def test_call_that_never_connected_is_closed_without_a_charge(
    client: httpx.AsyncClient, pool: asyncpg.Pool, voice_agent: dict[str, object]
) -> None:
    call = TwilioCall(client)
    await call.status("no-answer", 0)  # a call we never answered: nothing to close
    assert await pool.fetchval("select count(*) from charges") == 0
    await call.dial_in()
    await call.status("busy", 0)
    assert await pool.fetchval("select count(*) from charges") == 0
    assert await pool.fetchval("select status from conversations") == "closed"


async def test_unsigned_or_forged_webhook_is_refused_before_anything_is_written(
    client: httpx.AsyncClient, pool: asyncpg.Pool, voice_agent: dict[str, object]
) -> None:
    call = TwilioCall(client)
    params = {"CallSid": call.call_sid, "From": CALLER, "To": NUMBER}
    forged = await client.post(VOICE_URL, data=params, headers={"X-Twilio-Signature": "Zm9v"})
    assert forged.status_code == 403
    assert await pool.fetchval("select count(*) from calls") == 0


async def test_recording_fetch_is_retried_after_twilio_failures(
    app: FastAPI,
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    settings: Settings,
    voice_agent: dict[str, object],
    twilio_standin: TwilioStandIn,
) -> None:
    call = TwilioCall(client)
    await call.dial_in()
    sid = "RE" + "2" * 32
    twilio_standin.recordings[sid] = wav_bytes(tone_pcm(0.2, 8000), 8000)
    # Three 503s exhaust the REST client's own tries once; the fetcher tries again.
    twilio_standin.recording_failures.extend([503, 503, 503])
    fields = {
        "RecordingSid": sid,
        "RecordingUrl": twilio_standin.recording_url(sid),
        "RecordingStatus": "completed",
        "RecordingDuration": "7",
    }
    await call.post(f"{VOICE_URL}/recording-status", **fields)
    await call.post(f"{VOICE_URL}/recording-status", **fields)  # Twilio repeats itself
    await app.state.gateway.services.drain()
    assert twilio_standin.recording_fetches == [f"{sid}.wav"] * 4
    row = await pool.fetchrow("select bucket_key, duration_seconds from recordings")
    assert row is not None and row["duration_seconds"] == 7
    assert await bucket_store(settings).get(row["bucket_key"]) == twilio_standin.recordings[sid]
    job = await pool.fetchrow("select status, attempts from voice_recording_fetches")
    assert dict(job) == {"status": "done", "attempts": 2}


async def test_recording_left_pending_by_a_restart_is_fetched_at_start_up(
    settings: Settings,
    pool: asyncpg.Pool,
    voice_agent: dict[str, object],
    twilio_standin: TwilioStandIn,
) -> None:
    from webhook_gateway.app import create_app

    call_sid = "CA" + uuid.uuid4().hex
    ws = voice_agent["workspace"]
    channel = voice_agent["channel"]
    async with pool.acquire() as conn:
        from shared import calls

        await calls.open_call(
            conn, call_sid=call_sid, workspace_id=ws.id, channel_id=channel.id,  # type: ignore[attr-defined]
            agent_id=None, source="twilio", from_number=CALLER, to_number=NUMBER,
        )  # fmt: skip
    sid = "RE" + "3" * 32
    twilio_standin.recordings[sid] = b"RIFF-pending-audio"
    await pool.execute(
        "insert into voice_recording_fetches (recording_sid, call_sid, recording_url)"
        " values ($1, $2, $3)",
        sid,
        call_sid,
        twilio_standin.recording_url(sid),
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        await application.state.gateway.services.drain()
    assert await pool.fetchval("select status from voice_recording_fetches") == "done"
    key = await pool.fetchval("select bucket_key from recordings")
    assert await bucket_store(settings).get(key) == b"RIFF-pending-audio"
