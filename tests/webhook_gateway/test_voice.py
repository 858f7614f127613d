"""Voice over TwiML, end to end through the real app: signed webhooks in, TwiML out.

Requests are signed with the `twilio` library's RequestValidator; the model is the local
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
from twilio.request_validator import RequestValidator

from shared import billing, conversations
from shared.recordings import S3RecordingStore
from shared.settings import Settings
from tests import factories
from tests.conftest import PUBLIC_BASE_URL, TWILIO_ACCOUNT_SID, TWILIO_TEST_TOKEN
from tests.standins.openai_api import OpenAIStandIn, tone_pcm, wav_bytes
from tests.standins.twilio_api import TwilioStandIn

NUMBER = "+15551234567"
CALLER = "+14155550123"
VOICE_URL = f"{PUBLIC_BASE_URL}/twilio-voice"
BUCKET = "call-recordings-test"


@pytest.fixture
async def settings(base_settings: Settings, s3_endpoint: str) -> Settings:
    """Test settings with recordings in moto's S3 and short voice deadlines."""
    configured = base_settings.model_copy(
        update={
            "recordings_backend": "s3",
            "recordings_bucket": BUCKET,
            "s3_endpoint_url": s3_endpoint,
            "s3_access_key_id": "testing",
            "s3_secret_access_key": "testing",
            "voice_turn_deadline_seconds": 1.0,
            "voice_collect_wait_seconds": 3.0,
            "voice_recording_retry_seconds": 0.01,
        }
    )
    await bucket_store(configured).ensure_bucket()
    return configured


def bucket_store(settings: Settings) -> S3RecordingStore:
    return S3RecordingStore(
        bucket=settings.recordings_bucket,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=settings.s3_secret_access_key,
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
        signature = RequestValidator(TWILIO_TEST_TOKEN).compute_signature(url, params)
        return await self.client.post(url, data=params, headers={"X-Twilio-Signature": signature})

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


def assert_listens(doc: ET.Element, *, turn: int, silent: int = 0, language: str = "en-US") -> None:
    """A <Gather input=speech> for `turn`, followed by a <Redirect> to the same action."""
    assert verbs(doc)[-2:] == ["Gather", "Redirect"], verbs(doc)
    gather = doc.find("Gather")
    assert gather is not None
    assert gather.attrib["input"] == "speech"
    assert gather.attrib["language"] == language
    assert gather.attrib["actionOnEmptyResult"] == "true"
    assert gather.attrib["speechTimeout"] == "2"
    action = urlsplit(gather.attrib["action"])
    assert f"{action.scheme}://{action.netloc}{action.path}" == f"{VOICE_URL}/turn"
    assert parse_qs(action.query) == {"turn": [str(turn)], "silent": [str(silent)]}
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
    await app.state.gateway.drain()

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
