"""SMS webhooks posted exactly as Twilio posts them (form-encoded, signed), and the rows an
SMS leaves behind: for the gateway's SMS tests and the reply sender's."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from uuid import UUID

import asyncpg
import httpx
from fastapi import FastAPI

from shared.models import Agent, Channel, Workspace
from shared.services import Services
from tests.conftest import PUBLIC_BASE_URL, TWILIO_ACCOUNT_SID
from tests.support import factories
from tests.support.twilio_signing import post_signed

OUR_NUMBER = "+15551234567"
CONTACT = "+15557654321"
EMPTY_RESPONSE = '<?xml version="1.0" encoding="UTF-8"?><Response />'


def message_sid() -> str:
    return "SM" + uuid.uuid4().hex


def inbound_params(body: str, *, sid: str | None = None, **fields: str) -> dict[str, str]:
    params = {
        "ToCountry": "US",
        "SmsMessageSid": sid or message_sid(),
        "NumMedia": "0",
        "SmsSid": "",
        "SmsStatus": "received",
        "Body": body,
        "To": OUR_NUMBER,
        "NumSegments": "1",
        "MessageSid": "",
        "AccountSid": TWILIO_ACCOUNT_SID,
        "From": CONTACT,
        "ApiVersion": "2010-04-01",
    }
    params["SmsSid"] = params["MessageSid"] = params["SmsMessageSid"]
    params.update(fields)
    return params


async def send_sms(
    client: httpx.AsyncClient, body: str, *, sid: str | None = None, **fields: str
) -> httpx.Response:
    sid = sid or message_sid()
    token = str(uuid.uuid5(uuid.NAMESPACE_URL, sid))  # Twilio repeats it on a retry
    return await post_signed(
        client,
        "/twilio-sms",
        inbound_params(body, sid=sid, **fields),
        headers={"I-Twilio-Idempotency-Token": token},
    )


async def send_status(
    client: httpx.AsyncClient, status_callback: str, sid: str, status: str, **fields: str
) -> httpx.Response:
    """POST a status callback to the URL we gave Twilio (query included, as Twilio does)."""
    assert status_callback.startswith(PUBLIC_BASE_URL)
    path = status_callback[len(PUBLIC_BASE_URL) :]
    params = {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "AccountSid": TWILIO_ACCOUNT_SID,
        "From": OUR_NUMBER,
        "To": CONTACT,
        "ApiVersion": "2010-04-01",
        **fields,
    }
    return await post_signed(client, path, params, signed_url=status_callback)


def services_of(app: FastAPI) -> Services:
    services: Services = app.state.gateway.services
    return services


async def settle(app: FastAPI) -> None:
    """Wait until the replies scheduled after the acknowledgement are done."""
    await services_of(app).drain(wait_seconds=15)


@dataclass(frozen=True)
class SmsSetup:
    workspace: Workspace
    agent: Agent
    channel: Channel


async def sms_setup(
    pool: asyncpg.Pool, *, number: str = OUR_NUMBER, **workspace_fields: object
) -> SmsSetup:
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn, **workspace_fields)  # type: ignore[arg-type]
        agent = await factories.agent(conn, ws.id, instructions="You sell tea.")
        channel = await factories.channel(conn, ws.id, number=number, agent_id=agent.id)
    return SmsSetup(ws, agent, channel)


async def inbound_count(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval("select count(*) from messages where direction = 'inbound'")
    return count


async def replies(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch("select * from sms_replies order by id")
    return rows


async def charges(pool: asyncpg.Pool, workspace_id: UUID) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(
        "select * from charges where workspace_id = $1 order by created_at", workspace_id
    )
    return rows
