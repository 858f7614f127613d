"""Twilio voice webhooks: the call, its `<Gather>` turns, the LiveKit leg, and callbacks.

This is the only place that reads Twilio's voice form fields; everything behind it speaks
domain terms (voice_loop, voice_recordings). Every route checks Twilio's signature.

    POST /twilio-voice                   a call comes in (the number's voice URL)
    POST /twilio-voice/turn              a <Gather> result (?turn=N&silent=K)
    POST /twilio-voice/collect           fetch a slow reply after a filler (?turn=N&wait=K)
    POST /twilio-voice/dial-status       the <Dial><Sip> leg into LiveKit ended
    POST /twilio-voice/handoff-status    the <Dial> to a person ended (?turn=N)
    POST /twilio-voice/status            call progress (the number's status callback URL)
    POST /twilio-voice/recording-status  a call recording is ready
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from webhook_gateway import twilio_fields as fields
from webhook_gateway.deps import GatewayDep
from webhook_gateway.twilio_signature import TwilioRequest, TwilioRequestDep
from webhook_gateway.twiml import empty_response, twiml
from webhook_gateway.voice_loop import IncomingCall
from webhook_gateway.voice_recordings import RecordingReady

logger = logging.getLogger("webhook_gateway.voice")

router = APIRouter(prefix="/twilio-voice")


MAX_SPEECH_CHARS = 4000  # a <Gather> transcribes at most a minute or so of speech


def _call_sid(tw: TwilioRequest) -> str:
    fields.sid(tw.get("AccountSid"), fields.ACCOUNT_SID, field="AccountSid")
    return fields.sid(tw.get("CallSid"), fields.CALL_SID, field="CallSid")


def _short(tw: TwilioRequest, name: str) -> str:
    return fields.text(tw.get(name), max_chars=fields.MAX_SHORT_CHARS, field=name)


def _address(tw: TwilioRequest, name: str) -> str:
    return fields.text(tw.get(name), max_chars=fields.MAX_ADDRESS_CHARS, field=name)


@router.post("")
async def incoming_call(tw: TwilioRequestDep, gateway: GatewayDep) -> Response:
    call = IncomingCall(
        call_sid=_call_sid(tw), from_number=_address(tw, "From"), to_number=_address(tw, "To")
    )
    if not call.call_sid:
        return empty_response()
    return twiml(await gateway.voice.answer(call))


@router.post("/turn")
async def gather_turn(
    tw: TwilioRequestDep,
    gateway: GatewayDep,
    turn: Annotated[int, Query(ge=1, le=10_000)] = 1,
    silent: Annotated[int, Query(ge=0, le=100)] = 0,
) -> Response:
    # Longer speech is cut, not refused: the caller would hear an application error.
    speech = fields.text(tw.get("SpeechResult"))[:MAX_SPEECH_CHARS]
    return twiml(await gateway.voice.turn(_call_sid(tw), turn, silent, speech))


@router.post("/collect")
async def collect_reply(
    tw: TwilioRequestDep,
    gateway: GatewayDep,
    turn: Annotated[int, Query(ge=1, le=10_000)] = 1,
    wait: Annotated[int, Query(ge=0, le=100)] = 1,
) -> Response:
    return twiml(await gateway.voice.collect(_call_sid(tw), turn, wait))


@router.post("/dial-status")
async def livekit_leg_ended(tw: TwilioRequestDep, gateway: GatewayDep) -> Response:
    document = await gateway.voice.dial_ended(
        _call_sid(tw), _short(tw, "DialCallStatus"), _short(tw, "DialSipResponseCode")
    )
    return twiml(document)


@router.post("/handoff-status")
async def handoff_leg_ended(
    tw: TwilioRequestDep,
    gateway: GatewayDep,
    turn: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    call_sid, dial_status = _call_sid(tw), _short(tw, "DialCallStatus")
    return twiml(await gateway.voice.handoff_ended(call_sid, dial_status, turn))


@router.post("/status")
async def call_status(tw: TwilioRequestDep, gateway: GatewayDep) -> Response:
    duration = fields.seconds(tw.get("CallDuration"), field="CallDuration")
    await gateway.voice.call_status(_call_sid(tw), _short(tw, "CallStatus"), duration)
    return empty_response()  # a 4xx/5xx here is Twilio error 15003


@router.post("/recording-status")
async def recording_status(tw: TwilioRequestDep, gateway: GatewayDep) -> Response:
    recording = RecordingReady(
        recording_sid=fields.sid(
            tw.get("RecordingSid"), fields.RECORDING_SID, field="RecordingSid"
        ),
        call_sid=_call_sid(tw),
        recording_url=fields.text(
            tw.get("RecordingUrl"), max_chars=fields.MAX_URL_CHARS, field="RecordingUrl"
        ),
        status=_short(tw, "RecordingStatus"),
        duration_seconds=fields.seconds(tw.get("RecordingDuration"), field="RecordingDuration"),
    )
    if not (recording.recording_sid and recording.call_sid and recording.recording_url):
        logger.warning("voice.recording_incomplete", extra={"call_sid": recording.call_sid})
        return empty_response()
    await gateway.recordings.accept(recording)
    return empty_response()
