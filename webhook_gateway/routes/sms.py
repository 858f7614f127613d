"""Twilio's SMS webhooks: `POST /twilio-sms` (a text arrives) and `POST /twilio-sms/status`
(a reply's delivery status). Twilio's field names stop here; the rest speaks shared/sms.py.

An inbound text is stored and its reply queued atomically (texts that arrive together in
one statement), then Twilio gets an empty `<Response/>` at once; the reply is generated and
sent after that (sms_replies.py).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from twilio.twiml.voice_response import VoiceResponse

from shared import sms
from shared.sms_replies import STATUS_PATH
from webhook_gateway.deps import PoolDep, gateway_of
from webhook_gateway.twilio_signature import (
    TwilioRequest,
    TwilioRequestDep,
    verified_twilio_request,
)
from webhook_gateway.twiml import empty_response, twiml

logger = logging.getLogger("webhook_gateway.sms")

MISCONFIGURED_VOICE_MESSAGE = (
    "Sorry, this number cannot take calls yet. Its voice webhook points at the text message "
    "address. Please ask the business to set the voice webhook to the voice address."
)


router = APIRouter()


def _positive_int(value: str) -> int | None:
    # Twilio caps a body at 1,600 characters (at most 24 segments); anything else is noise.
    return int(value) if value.isdigit() and 0 < int(value) <= 1000 else None


def _text(value: str) -> str:
    return value.replace("\x00", "")  # Postgres text cannot hold NUL


def _inbound(req: TwilioRequest) -> sms.InboundSms:
    sid = req.get("MessageSid") or req.get("SmsMessageSid") or req.get("SmsSid")
    from_number, to_number = req.get("From"), req.get("To")
    if not sid or not from_number or not to_number:
        raise HTTPException(status_code=400, detail="MessageSid, From and To are required")
    return sms.InboundSms(
        message_sid=_text(sid),
        from_number=_text(from_number),
        to_number=_text(to_number),
        body=_text(req.get("Body")),
        num_segments=_positive_int(req.get("NumSegments")),
        opt_out_type=req.get("OptOutType") or None,
    )


def _misrouted_call(req: TwilioRequest) -> Response:
    # The most common setup mistake: the caller must hear why, not silence.
    logger.error(
        "sms.voice_webhook_points_at_sms_url",
        extra={"call_sid": req.get("CallSid"), "to": req.get("To")},
    )
    document = VoiceResponse()
    document.say(MISCONFIGURED_VOICE_MESSAGE)
    document.hangup()
    return twiml(document)


async def inbound_sms(request: Request) -> Response:
    # A plain Starlette route, the one webhook every text hits: FastAPI's dependency solving
    # would cost as much as the signature check (figures: bench/README.md).
    gateway = gateway_of(request)
    req = await verified_twilio_request(request, gateway.services.settings)
    if req.get("CallSid"):
        return _misrouted_call(req)
    inbound = _inbound(req)
    received = await gateway.sms_intake.submit(inbound)
    extra = {
        "message_sid": inbound.message_sid,
        "workspace_id": str(received.workspace_id) if received.workspace_id else None,
        "conversation_id": str(received.conversation_id) if received.conversation_id else None,
        "outcome": received.outcome.value,
        "reason": received.reason.value if received.reason else None,
        "idempotency_token": request.headers.get("i-twilio-idempotency-token"),
    }
    if received.outcome is sms.Outcome.REGION_REFUSED:
        logger.warning("sms.refused_region_not_enabled", extra=extra)
    else:
        logger.info("sms.received", extra=extra)
    if received.reply is not None:
        gateway.sms_replier.schedule(received.reply)
    return empty_response()


router.add_route("/twilio-sms", inbound_sms, methods=["POST"])


@router.post(STATUS_PATH)
async def sms_status(req: TwilioRequestDep, request: Request, pool: PoolDep) -> Response:
    sid = req.get("MessageSid") or req.get("SmsSid")
    status = (req.get("MessageStatus") or req.get("SmsStatus")).lower()
    if not sid or not status:
        raise HTTPException(status_code=400, detail="MessageSid and MessageStatus are required")
    reply = request.query_params.get("reply", "")
    update = sms.DeliveryStatus(
        message_sid=_text(sid),
        status=status,
        num_segments=_positive_int(req.get("NumSegments")),
        error_code=req.get("ErrorCode") or None,
        reply_id=int(reply) if reply.isdigit() and len(reply) < 16 else None,
    )
    async with pool.acquire() as conn:
        delivery = await sms.record_delivery(conn, update)
    extra = {
        "message_sid": sid,
        "status": status,
        "error_code": update.error_code,
        "known": delivery.known,
        "charged_segments": delivery.charge.quantity if delivery.charge else None,
    }
    if not delivery.known:
        logger.warning("sms.status_for_unknown_message", extra=extra)
    else:
        logger.info("sms.status", extra=extra)
    # Twilio logs 15003 for any non-2xx on a status callback: always answer 200.
    return empty_response()
