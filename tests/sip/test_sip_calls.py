"""Real phone calls over SIP: SIPp dials LiveKit's SIP bridge, the worker answers.

Nothing is faked between the caller and the agent: SIPp's INVITE reaches `livekit-sip`,
which matches the trunk and dispatch rule `sync_inbound_sip` (the code behind
`wassla livekit setup`) created, puts the caller in a fresh room and dispatches our worker
process. The caller's audio is real RTP (μ-law) carrying espeak-ng speech; the agent's
reply comes back as RTP. Only the paid AI API is the local OpenAI-compatible stand-in.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import unquote

import asyncpg
import httpx
from livekit import api

from shared.providers.livekit_sip import sync_inbound_sip
from shared.settings import Settings
from tests.conftest import PUBLIC_BASE_URL, TWILIO_ACCOUNT_SID
from tests.sip.conftest import Caller
from tests.sip.rtp import SAMPLE_RATE, RtpPeer
from tests.sip.servers import SipBridge
from tests.sip.sipp import SippCall
from tests.standins.openai_api import ChatScript, OpenAIStandIn
from tests.support import factories
from tests.support.audio import espeak_pcm
from tests.support.calls import ended_call
from tests.support.gateway import running_gateway
from tests.support.livekit_server import LiveKitServer
from tests.support.polling import eventually
from tests.support.twilio_signing import post_signed
from tests.support.worker_process import recordings_store

OUR_NUMBER = "+15557654321"
CALLER = "+15550001111"
HANDOFF_NUMBER = "+15559876543"
WITHIN = 30.0  # how long these tests wait for a row or a participant the call makes


async def voice_line(pool: asyncpg.Pool, sip_settings: Settings, **agent_fields: Any) -> Any:
    """A live workspace whose voice agent answers OUR_NUMBER, and the trunk that routes it."""
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn)
        fields = {"greeting": "Hello, you reached Acme.", "modality": "voice", **agent_fields}
        agent = await factories.agent(conn, ws.id, **fields)
        await factories.channel(conn, ws.id, kind="voice", number=OUR_NUMBER, agent_id=agent.id)
    await sync_inbound_sip(sip_settings, [OUR_NUMBER])
    return ws


def bridge_call_id(call: SippCall) -> str:
    """LiveKit's id of the call: the To tag of the bridge's 200 OK (`SCL_...`)."""
    ok = [m for m in call.received("SIP/2.0 200") if "CSeq: 1 INVITE" in m]
    assert ok, call.diagnostics()
    match = re.search(r"^To:.*;tag=(\S+)$", ok[0], flags=re.MULTILINE)
    assert match, ok[0]
    return match.group(1).strip()


async def converse(phone: Caller, rtp: RtpPeer, words: str) -> tuple[float, float]:
    """Hear the greeting, say `words` once it ends, hear the whole reply.

    Returns when the caller stopped speaking and when the reply started.
    """
    try:
        # Dispatch of the agent into a new room can take a while on a loaded machine.
        greeted_at = await rtp.wait_agent_speaking(after=0.0, within=60)
        await rtp.wait_agent_quiet(after=greeted_at)
        rtp.say(espeak_pcm(words, rate=SAMPLE_RATE))
        spoke_until = await rtp.finish_saying()
        reply_at = await rtp.wait_agent_speaking(after=spoke_until, within=30)
        await rtp.wait_agent_quiet(after=reply_at)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{phone.diagnostics()}") from exc
    return spoke_until, reply_at


async def test_sip_call_is_greeted_heard_answered_over_rtp_and_closed_with_transcript_recording_and_one_charge(  # noqa: E501
    pool: asyncpg.Pool,
    sip_settings: Settings,
    openai_standin: OpenAIStandIn,
    phone: Caller,
    s3_endpoint: str,
) -> None:
    ws = await voice_line(pool, sip_settings, voice="nova")
    openai_standin.script_transcripts("I would like to know my order status.")
    openai_standin.script_chat("Your order is on its way and arrives tomorrow.")

    call, rtp = await phone.dial(OUR_NUMBER, caller=CALLER)
    spoke_until, reply_at = await converse(
        phone, rtp, "Hello, I would like to know my order status please."
    )
    assert reply_at > spoke_until
    call_sid = bridge_call_id(call)

    # The caller's RTP reached STT as audio (μ-law 8 kHz, resampled by the bridge and agent).
    assert rtp.speech_packets_sent > 50
    heard = openai_standin.transcription_requests
    assert heard and heard[0]["audio_bytes"] > 10_000
    assert {r["body"]["voice"] for r in openai_standin.speech_requests} == {"nova"}

    await call.press_hang_up()
    assert await call.wait(within=30) == 0, phone.diagnostics()
    assert call.sent("BYE") and call.received("SIP/2.0 200 OK")[-1].find("CSeq: 2 BYE") > 0

    ended = await ended_call(pool, call_sid)
    assert ended.status == "completed" and ended.from_number == CALLER
    assert ended.duration_seconds is not None and 0 < ended.duration_seconds < 120
    conversation = await pool.fetchrow(
        "select status, contact_number from conversations where id = $1", ended.conversation_id
    )
    assert conversation["status"] == "closed"
    transcript = await pool.fetch(
        "select role, body from messages where conversation_id = $1 order by id",
        ended.conversation_id,
    )
    assert [(m["role"], m["body"]) for m in transcript] == [
        ("assistant", "Hello, you reached Acme."),
        ("user", "I would like to know my order status."),
        ("assistant", "Your order is on its way and arrives tomorrow."),
    ]

    charges = await pool.fetch(
        "select kind, quantity, idempotency_key from charges where workspace_id = $1", ws.id
    )
    assert [(c["kind"], c["quantity"], c["idempotency_key"]) for c in charges] == [
        ("voice_minutes", 1, f"voice_minutes:{call_sid}")
    ]
    recording = await eventually(
        lambda: pool.fetchrow(
            "select bucket_key, size_bytes from recordings where call_id = $1", ended.id
        ),
        within=WITHIN,
        what="the recording row",
    )
    data = await recordings_store(s3_endpoint).get(recording["bucket_key"])
    assert data[:4] == b"OggS" and len(data) == recording["size_bytes"] > 1000
    assert await pool.fetchval("select count(*) from recordings") == 1


async def test_caller_asking_for_a_human_is_transferred_with_a_sip_refer_to_the_handoff_number(
    pool: asyncpg.Pool,
    sip_settings: Settings,
    openai_standin: OpenAIStandIn,
    phone: Caller,
) -> None:
    ws = await voice_line(pool, sip_settings, handoff_number=HANDOFF_NUMBER)
    openai_standin.script_transcripts("I want to talk to a person.")
    openai_standin.script_chat(ChatScript("", tool_call="transfer_to_human"))

    call, rtp = await phone.dial(OUR_NUMBER, caller=CALLER, scenario="transfer.xml")
    await converse(phone, rtp, "I want to talk to a person please.")
    call_sid = bridge_call_id(call)

    # The scenario only completes if a REFER arrived, was accepted (202), its NOTIFY was
    # taken, and the bridge then ended our leg with BYE.
    assert await call.wait(within=60) == 0, phone.diagnostics()
    refers = call.received("REFER ")
    assert len(refers) == 1
    refer_to = re.search(r"^Refer-To:\s*<?([^>\r\n]+)>?", refers[0], flags=re.MULTILINE)
    assert refer_to is not None and refer_to.group(1) == f"tel:{HANDOFF_NUMBER}"
    assert call.sent("SIP/2.0 202 Accepted") and call.received("BYE ")

    ended = await ended_call(pool, call_sid)
    handed_off = await pool.fetchval(
        "select handed_off from conversations where id = $1", ended.conversation_id
    )
    assert handed_off is True
    said = await pool.fetchval(
        "select body from messages where conversation_id = $1 and role = 'assistant'"
        " order by id desc limit 1",
        ended.conversation_id,
    )
    assert "transferring" in said.lower()
    charged = await pool.fetch("select quantity from charges where workspace_id = $1", ws.id)
    assert [c["quantity"] for c in charged] == [1]


def sip_invite_for(uri: str) -> tuple[str, str, dict[str, str]]:
    """What Twilio's `<Dial><Sip>` sends for `uri`: (user, host:port, headers)."""
    match = re.fullmatch(r"sips?:([^@]+)@([^;?]+)(;[^?]*)?(?:\?(.*))?", uri)
    assert match, uri
    headers = {}
    for pair in (match.group(4) or "").split("&"):
        if pair:
            name, _, value = pair.partition("=")
            headers[unquote(name)] = unquote(value)
    return match.group(1), match.group(2), headers


class TwilioSide:
    """Twilio's webhooks to the real gateway app, signed as Twilio signs them."""

    def __init__(self, client: httpx.AsyncClient, call_sid: str) -> None:
        self.client = client
        self.call_sid = call_sid

    async def post(self, path: str, **fields: str) -> ET.Element:
        url = f"{PUBLIC_BASE_URL}/twilio-voice{path}"
        form = {
            "CallSid": self.call_sid, "AccountSid": TWILIO_ACCOUNT_SID, "From": CALLER,
            "To": OUR_NUMBER, "Direction": "inbound", "ApiVersion": "2010-04-01", **fields,
        }  # fmt: skip
        response = await post_signed(self.client, url, form)
        assert response.status_code == 200, response.text
        return ET.fromstring(response.content)


async def test_twilio_call_bridged_by_dial_sip_reaches_the_worker_with_its_call_sid_as_one_call(
    pool: asyncpg.Pool,
    sip_settings: Settings,
    sip_livekit: LiveKitServer,
    sip_bridge: SipBridge,
    openai_standin: OpenAIStandIn,
    phone: Caller,
) -> None:
    ws = await voice_line(pool, sip_settings)
    gateway_settings = sip_settings.changed(
        {"livekit.sip_uri": f"sip:127.0.0.1:{sip_bridge.sip_port};transport=udp"}
    )
    call_sid = "CA" + uuid.uuid4().hex
    lk = api.LiveKitAPI(sip_livekit.url, sip_livekit.api_key, sip_livekit.api_secret)
    async with running_gateway(gateway_settings) as (_, client):
        twilio = TwilioSide(client, call_sid)
        answer = await twilio.post("", CallStatus="ringing")
        sip = answer.find("Dial/Sip")
        assert sip is not None and sip.text, ET.tostring(answer)
        user, host, headers = sip_invite_for(sip.text)
        assert (user, host) == (OUR_NUMBER, f"127.0.0.1:{sip_bridge.sip_port}")
        assert headers == {"X-Wassla-Call-Sid": call_sid}

        try:
            # Every header the gateway adds is one the trunk maps to a participant attribute.
            trunks = await lk.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())
            trunk = next(t for t in trunks.items if t.name == sip_settings.livekit.sip_trunk_name)
            assert {h: trunk.headers_to_attributes[h] for h in headers} == {
                "X-Wassla-Call-Sid": "wassla.call_sid"
            }

            # Twilio's INVITE for that URI, placed by SIPp: same number, same header.
            openai_standin.script_transcripts("What are your opening hours?")
            openai_standin.script_chat("We are open from nine to five.")
            header_lines = "\r\n".join(f"{k}: {v}" for k, v in headers.items())
            call, rtp = await phone.dial(user, caller=CALLER, extra_header=header_lines)
            await converse(phone, rtp, "What are your opening hours?")
            attributes = await eventually(
                lambda: sip_caller_attributes(lk), within=WITHIN, what="SIP caller"
            )
        finally:
            await lk.aclose()
        assert attributes["wassla.call_sid"] == call_sid
        assert attributes["sip.trunkPhoneNumber"] == OUR_NUMBER

        await call.press_hang_up()
        assert await call.wait(within=30) == 0, phone.diagnostics()
        ended = await ended_call(pool, call_sid)

        # Twilio then reports the bridged leg and the call as completed: nothing is added.
        hang_up = await twilio.post("/dial-status", DialCallStatus="completed")
        assert [child.tag for child in hang_up] == ["Hangup"]
        await twilio.post("/status", CallStatus="completed", CallDuration="14")

    # The worker continued the gateway's call row: one call, one conversation, one charge.
    assert await pool.fetchval("select count(*) from calls") == 1
    assert await pool.fetchval("select count(*) from conversations") == 1
    bodies = await pool.fetch(
        "select role, body from messages where conversation_id = $1 order by id",
        ended.conversation_id,
    )
    assert [(m["role"], m["body"]) for m in bodies] == [
        ("assistant", "Hello, you reached Acme."),
        ("user", "What are your opening hours?"),
        ("assistant", "We are open from nine to five."),
    ]
    charges = await pool.fetch(
        "select idempotency_key, quantity from charges where workspace_id = $1", ws.id
    )
    assert [(c["idempotency_key"], c["quantity"]) for c in charges] == [
        (f"voice_minutes:{call_sid}", 1)
    ]


async def sip_caller_attributes(lk: api.LiveKitAPI) -> dict[str, str] | None:
    """The attributes of the (one) SIP participant in any room, once it has joined."""
    rooms = await lk.room.list_rooms(api.ListRoomsRequest())
    for room in rooms.rooms:
        listed = await lk.room.list_participants(api.ListParticipantsRequest(room=room.name))
        for participant in listed.participants:
            if participant.kind == api.ParticipantInfo.Kind.SIP:
                return dict(participant.attributes)
    return None
