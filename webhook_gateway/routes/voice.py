"""Twilio voice webhooks: the call, its `<Gather>` turns, the LiveKit leg, and callbacks.

This is the only place that reads Twilio's voice form fields; everything behind it speaks
domain terms (voice_loop, voice_recordings). Every route checks Twilio's signature.

    POST /twilio-voice                   a call comes in (the number's voice URL)
    POST /twilio-voice/turn              a <Gather> result (?turn=N&silent=K[&failed=F])
    POST /twilio-voice/collect           fetch a slow reply after a filler (?turn=N&wait=K)
    POST /twilio-voice/dial-status       the <Dial><Sip> leg into LiveKit ended
    POST /twilio-voice/handoff-status    the <Dial> to a person ended (?turn=N[&warm=1])
    POST /twilio-voice/whisper           a warm hand-off's person answered (?call=CA..&turn=N)
    POST /twilio-voice/whisper-answer    their key: 1 accepts, anything else declines
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
from webhook_gateway.gateway import Gateway
from webhook_gateway.twilio_signature import TwilioRequest, TwilioRequestDep
from webhook_gateway.twiml import empty_response, twiml
from webhook_gateway.voice_loop import IncomingCall
from webhook_gateway.voice_recordings import RecordingReady

logger = logging.getLogger("webhook_gateway.voice")

router = APIRouter(prefix="/twilio-voice")


MAX_SPEECH_CHARS = 4000  # a <Gather> transcribes at most a minute or so of speech
# Silent waits in a row a turn URL may carry: the longest idle timers (300 s + 300 s) in
# waits of one second.
MAX_SILENT_WAITS = 1000


def _call_sid(tw: TwilioRequest) -> str:
    fields.sid(tw.get("AccountSid"), fields.ACCOUNT_SID, field="AccountSid")
    return fields.sid(tw.get("CallSid"), fields.CALL_SID, field="CallSid")


def _short(tw: TwilioRequest, name: str) -> str:
    return fields.text(tw.get(name), max_chars=fields.MAX_SHORT_CHARS, field=name)


def _keypad(tw: TwilioRequest, gateway: Gateway) -> str:
    max_digits = gateway.voice.settings.calls.keypad_max_digits
    return fields.digits(tw.get("Digits"), max_digits=max_digits)


def _parent_call(call: str) -> str:
    """The caller's CallSid a warm hand-off URL carries (Twilio signed it with the URL)."""
    sid = fields.sid(call, fields.CALL_SID, field="call")
    if not sid:
        raise fields.invalid("call is required")
    return sid


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
    silent: Annotated[int, Query(ge=0, le=MAX_SILENT_WAITS)] = 0,
    failed: Annotated[int, Query(ge=0, le=100)] = 0,
) -> Response:
    # Longer speech is cut, not refused: the caller would hear an application error.
    speech = fields.text(tw.get("SpeechResult"))[:MAX_SPEECH_CHARS]
    digits = _keypad(tw, gateway)
    document = await gateway.voice.turn(
        _call_sid(tw), turn, silent, speech, digits=digits, failed=failed
    )
    return twiml(document)


@router.post("/collect")
async def collect_reply(
    tw: TwilioRequestDep,
    gateway: GatewayDep,
    turn: Annotated[int, Query(ge=1, le=10_000)] = 1,
    wait: Annotated[int, Query(ge=0, le=100)] = 1,
    failed: Annotated[int, Query(ge=0, le=100)] = 0,
) -> Response:
    return twiml(await gateway.voice.collect(_call_sid(tw), turn, wait, failed=failed))


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
    warm: Annotated[int, Query(ge=0, le=1)] = 0,
) -> Response:
    call_sid, dial_status = _call_sid(tw), _short(tw, "DialCallStatus")
    document = await gateway.voice.handoff_ended(call_sid, dial_status, turn, warm=bool(warm))
    return twiml(document)


@router.post("/whisper")
async def warm_whisper(
    tw: TwilioRequestDep,
    gateway: GatewayDep,
    call: Annotated[str, Query(max_length=64)] = "",
    turn: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    _call_sid(tw)  # the person's own leg: shaped like a CallSid, or refused
    return twiml(await gateway.voice.whisper(_parent_call(call), turn))


@router.post("/whisper-answer")
async def warm_whisper_answer(
    tw: TwilioRequestDep,
    gateway: GatewayDep,
    call: Annotated[str, Query(max_length=64)] = "",
    turn: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    _call_sid(tw)
    digits = _keypad(tw, gateway)
    return twiml(await gateway.voice.whisper_answered(_parent_call(call), turn, digits))


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
