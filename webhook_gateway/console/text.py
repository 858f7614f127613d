"""Text your agent: a phone in the page that texts one of the workspace's SMS numbers as a
contact would, for development and test installations only (WASSLA_ENV=development).

Sending is what Twilio does when a person texts the number: a `POST /twilio-sms` webhook
with Twilio's fields, signed with the configured TWILIO_AUTH_TOKEN. The gateway posts it to
itself in-process (httpx's ASGI transport: the whole app, signature check included, no
socket), so the text takes exactly the production path. The phone's thread is the contact's
texts as stored, and the replies as the Twilio API lists them (the Messages list, through the
one Twilio REST client): in `wassla dev` that is the local sandbox, which recorded them.
The page re-reads the thread when the workspace's live feed reports a message change.

Not in production: a signed webhook in a real workspace would make real replies, sent by
Twilio to a number nobody holds, at the workspace's cost.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Annotated, Any
from uuid import UUID

import httpx
from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.responses import JSONResponse
from twilio.request_validator import RequestValidator

from shared import channels, conversations
from shared.e164 import normalize_e164
from shared.errors import Forbidden, InvalidInput, NotFound
from shared.models import Channel
from shared.settings import Settings
from shared.sms_segments import count_segments
from webhook_gateway.auth import CONSOLE_HEADER
from webhook_gateway.deps import PoolDep, ServicesDep, SettingsDep

from .session import ConsoleMember, ConsoleRoute
from .templating import render

logger = logging.getLogger("webhook_gateway.console")

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)  # the page
api_router = APIRouter(include_in_schema=False)  # what its script calls: JSON errors
WS = "/console/w/{workspace_id}"
DEFAULT_CONTACT = "+15557654321"
MAX_BODY_CHARS = 1600  # what Twilio delivers in one message
_THREAD_TEXTS = 50


def available(settings: Settings) -> bool:
    return settings.env == "development"


@dataclass(frozen=True)
class PhoneText:
    sent: bool  # by the contact (else received from our number)
    body: str
    at: datetime
    sid: str

    def as_json(self) -> dict[str, Any]:
        return {
            "direction": "sent" if self.sent else "received",
            "body": self.body,
            "at": self.at.isoformat(),
            "sid": self.sid,
        }


def inbound_fields(
    *, account_sid: str | None, ours: str, contact: str, body: str
) -> dict[str, str]:
    """The form Twilio posts for a text `contact` sent to our number `ours`."""
    sid = "SM" + uuid.uuid4().hex
    fields = {
        "MessageSid": sid,
        "SmsMessageSid": sid,
        "SmsSid": sid,
        "From": contact,
        "To": ours,
        "Body": body,
        "NumMedia": "0",
        "NumSegments": str(count_segments(body)),
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }
    if account_sid:
        fields["AccountSid"] = account_sid
    return fields


async def _sms_channel(pool: PoolDep, workspace_id: UUID, channel_id: UUID) -> Channel:
    async with pool.acquire() as conn:
        found = await channels.list_channels(conn, workspace_id, active_only=True)
    channel = next((c for c in found if c.id == channel_id and c.kind == "sms"), None)
    if channel is None:
        raise NotFound("no connected SMS number with that id in this workspace")
    return channel


def _contact(raw: str) -> str:
    contact = normalize_e164(raw[:64])  # InvalidPhoneNumber (422) says what is wrong
    return contact


def _require_available(settings: Settings) -> None:
    if not available(settings):
        raise Forbidden("Text your agent is for development and test installations only")


@router.get(WS + "/text")
async def text_page(
    request: Request, member: ConsoleMember, pool: PoolDep, settings: SettingsDep
) -> Response:
    async with pool.acquire() as conn:
        found = await channels.list_channels(conn, member.workspace.id, active_only=True)
    return render(
        request,
        "text.html",
        workspace_id=member.workspace.id,
        member=member,
        available=available(settings),
        numbers=[c for c in found if c.kind == "sms"],
        contact=DEFAULT_CONTACT,
        api_base=f"/console/w/{member.workspace.id}/text",
        console_header=CONSOLE_HEADER,
        max_chars=MAX_BODY_CHARS,
    )


@api_router.post(WS + "/text/send")
async def send_text(
    request: Request,
    member: ConsoleMember,
    pool: PoolDep,
    settings: SettingsDep,
    channel_id: Annotated[UUID, Body()],
    contact: Annotated[str, Body(max_length=64)],
    body: Annotated[str, Body(max_length=MAX_BODY_CHARS * 2)],
) -> Response:
    """Post the signed webhook of a text from `contact` to the channel's number."""
    if not request.headers.get(CONSOLE_HEADER):
        return JSONResponse({"detail": f"send the {CONSOLE_HEADER} header"}, status_code=403)
    _require_available(settings)
    member.require_change()  # the reply spends the workspace's credit
    settings.require("twilio.auth_token")
    assert settings.twilio.auth_token is not None
    text = body.strip()
    if not text or len(text) > MAX_BODY_CHARS:
        raise InvalidInput(f"A text has 1 to {MAX_BODY_CHARS} characters.")
    sender = _contact(contact)
    channel = await _sms_channel(pool, member.workspace.id, channel_id)
    if sender == channel.phone_number:
        raise InvalidInput("Text from a contact's number, not from the agent's own.")
    fields = inbound_fields(
        account_sid=settings.twilio.account_sid,
        ours=channel.phone_number,
        contact=sender,
        body=text,
    )
    url = settings.public_base_url + "/twilio-sms"
    signature = RequestValidator(settings.twilio.auth_token).compute_signature(url, fields)
    transport = httpx.ASGITransport(app=request.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as gateway:
        answer = await gateway.post(
            "/twilio-sms",
            data=fields,
            headers={
                "X-Twilio-Signature": signature,
                "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
            },
        )
    logger.info(
        "console.text_sent",
        extra={
            "workspace_id": str(member.workspace.id),
            "message_sid": fields["MessageSid"],
            "status": answer.status_code,
            "user": member.user_id,
        },
    )
    if answer.status_code != 200:
        return JSONResponse(
            {"detail": f"the SMS webhook answered {answer.status_code}: {answer.text[:300]}"},
            status_code=502,
        )
    return JSONResponse({"message_sid": fields["MessageSid"]})


def _twilio_time(value: str) -> datetime:
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return datetime.now(UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@api_router.get(WS + "/text/thread")
async def text_thread(
    member: ConsoleMember,
    services: ServicesDep,
    channel_id: UUID,
    contact: Annotated[str, Query(max_length=64)],
) -> Response:
    """The contact's phone: what it sent (stored) and what it received (Twilio's list)."""
    _require_available(services.settings)
    phone = _contact(contact)
    channel = await _sms_channel(services.pool, member.workspace.id, channel_id)
    async with services.pool.acquire() as conn:
        stored = await conversations.texts_from_contact(
            conn, channel.id, phone, limit=_THREAD_TEXTS
        )
    texts = [PhoneText(True, m.body, m.created_at, m.provider_id or str(m.id)) for m in stored]
    if services.twilio is not None:  # None: no Twilio account, nothing was sent
        received = await services.twilio.list_messages(
            to=phone, from_=channel.phone_number, limit=_THREAD_TEXTS
        )
        texts += [PhoneText(False, m.body, _twilio_time(m.date_created), m.sid) for m in received]
    texts.sort(key=lambda t: (t.at, not t.sent))
    return JSONResponse(
        {"texts": [t.as_json() for t in texts]},
        headers={"Cache-Control": "no-store"},
    )
