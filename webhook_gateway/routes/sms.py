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
from shared.sms_replies import STATUS_PATH, reply_signature_valid
from webhook_gateway import twilio_fields as fields
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


def _segments(value: str) -> int | None:
    # Twilio caps a body at 1,600 characters (at most 24 segments); anything else is noise.
    return fields.count(value, maximum=1000)


def _message_sid(req: TwilioRequest) -> str:
    # Each of Twilio's three names for the id is checked: a garbled one is a replay.
    sids = [
        fields.sid(req.get(name), fields.MESSAGE_SID, field=name)
        for name in ("MessageSid", "SmsMessageSid", "SmsSid")
    ]
    return next((s for s in sids if s), "")


def _address(req: TwilioRequest, name: str) -> str:
    return fields.text(req.get(name), max_chars=fields.MAX_ADDRESS_CHARS, field=name)


def _inbound(req: TwilioRequest) -> sms.InboundSms:
    sid = _message_sid(req)
    from_number, to_number = _address(req, "From"), _address(req, "To")
    if not sid or not from_number or not to_number:
        raise HTTPException(status_code=400, detail="MessageSid, From and To are required")
    fields.sid(req.get("AccountSid"), fields.ACCOUNT_SID, field="AccountSid")
    opt_out = fields.text(
        req.get("OptOutType"), max_chars=fields.MAX_SHORT_CHARS, field="OptOutType"
    )
    return sms.InboundSms(
        message_sid=sid,
        from_number=from_number,
        to_number=to_number,
        body=fields.text(req.get("Body")),
        num_segments=_segments(req.get("NumSegments")),
        opt_out_type=opt_out or None,
    )


def _misrouted_call(req: TwilioRequest) -> Response:
    # The most common setup mistake: the caller must hear why, not silence.
    logger.error(
        "sms.voice_webhook_points_at_sms_url",
        extra={"call_sid": fields.text(req.get("CallSid"))[:64], "to": req.get("To")[:64]},
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


def _signed_reply_id(request: Request, req: TwilioRequest) -> int | None:
    """The reply a status callback names, if our own signature in its URL proves it.

    403 for a wrong signature: the URL was altered. Without one (a callback URL from
    before replies were signed) the reply is not trusted, and the callback only updates
    the message its MessageSid names."""
    reply = request.query_params.get("reply", "")
    signature = request.query_params.get("sig")
    if not reply or signature is None:
        return None
    token = gateway_of(request).services.settings.twilio.auth_token or ""
    if not reply_signature_valid(token, reply, signature):
        logger.warning(
            "sms.status_reply_signature_rejected",
            extra={"message_sid": req.get("MessageSid")[:40], "reply": reply[:20]},
        )
        raise HTTPException(status_code=403, detail="status callback URL was altered")
    return int(reply) if reply.isdigit() and len(reply) < 16 else None


@router.post(STATUS_PATH)
async def sms_status(req: TwilioRequestDep, request: Request, pool: PoolDep) -> Response:
    sid = _message_sid(req)
    status = req.get("MessageStatus") or req.get("SmsStatus")
    status = fields.text(status, max_chars=fields.MAX_SHORT_CHARS, field="MessageStatus").lower()
    if not sid or not status:
        raise HTTPException(status_code=400, detail="MessageSid and MessageStatus are required")
    fields.sid(req.get("AccountSid"), fields.ACCOUNT_SID, field="AccountSid")
    error_code = fields.text(
        req.get("ErrorCode"), max_chars=fields.MAX_SHORT_CHARS, field="ErrorCode"
    )
    update = sms.DeliveryStatus(
        message_sid=sid,
        status=status,
        num_segments=_segments(req.get("NumSegments")),
        error_code=error_code or None,
        reply_id=_signed_reply_id(request, req),
        from_number=_address(req, "From") or None,
        to_number=_address(req, "To") or None,
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
    # Twilio logs 15003 for any non-2xx on a status callback: a genuine one always gets 200
    # (only a malformed or altered one gets the 4xx above).
    return empty_response()
