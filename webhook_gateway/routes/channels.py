"""The Channels API the Channels page calls: tiles, connect, change, disconnect, configure.

Every route needs a user token (CurrentUser). Any member may read; only roles that may manage
channels (owner, admin) may write. Non-members get 404, like an unknown workspace, so the
API never confirms that a workspace id exists. Checks run in this order: token, membership,
role, then the request body, so a viewer learns nothing from a body's validation errors.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TypeVar
from uuid import UUID

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, ValidationError

from shared import agents, channels, workspaces
from shared.errors import (
    Conflict,
    InvalidInput,
    MissingSetting,
    NotFound,
    PlanExcludesChannel,
    ProviderStatusError,
)
from shared.models import Channel, ChannelKind
from shared.pg import Connection
from shared.routing import route_agent
from shared.settings import Settings
from webhook_gateway.auth import require_member
from webhook_gateway.deps import CurrentUser, PoolDep, ServicesDep, SettingsDep

logger = logging.getLogger("webhook_gateway.channels")

router = APIRouter(prefix="/api/workspaces/{workspace_id}/channels", tags=["channels"])

SMS_WEBHOOK_PATH = "/twilio-sms"
VOICE_WEBHOOK_PATH = "/twilio-voice"
VOICE_STATUS_CALLBACK_PATH = "/twilio-voice/status"
_WEBHOOK_PATHS = {ChannelKind.SMS: SMS_WEBHOOK_PATH, ChannelKind.VOICE: VOICE_WEBHOOK_PATH}
_LABELS = {ChannelKind.SMS: "Twilio SMS", ChannelKind.VOICE: "Twilio Voice"}
_MAX_BODY_BYTES = 16 * 1024  # a connect request is ~100 bytes


class AgentRef(BaseModel):
    id: UUID
    name: str


class ChannelOut(BaseModel):
    id: UUID
    kind: ChannelKind
    phone_number: str
    active: bool
    agent: AgentRef | None  # the agent bound to the channel; None: the workspace's default
    # Who answers the next message or call (routing's choice): the bound agent when it is
    # active and fit, else the workspace's default; None means nobody would answer.
    answering_agent: AgentRef | None
    webhook_url: str
    created_at: datetime
    updated_at: datetime


class ChannelTile(BaseModel):
    """One tile of the Channels page; `starter_required` replaces the form when true."""

    kind: ChannelKind
    label: str
    starter_required: bool
    connected: bool
    channel_id: UUID | None
    phone_number: str | None
    agent: AgentRef | None
    answering_agent: AgentRef | None
    webhook_url: str | None  # what to paste into Twilio; None when the plan lacks the channel
    channels: list[ChannelOut]  # every active number of this kind (the first is shown above)


class ChannelTiles(BaseModel):
    workspace_id: UUID
    plan: str
    tiles: list[ChannelTile]


class ChannelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str  # checked by the domain, which explains the allowed values in its message
    phone_number: str
    agent_id: UUID | None = None


class ChannelUpdate(BaseModel):
    """Fields left out stay as they are; `"agent_id": null` unbinds the agent."""

    model_config = ConfigDict(extra="forbid")

    phone_number: str | None = None
    agent_id: UUID | None = None


class TwilioConfigured(BaseModel):
    phone_number: str
    phone_number_sid: str
    fields: dict[str, str]


_Body = TypeVar("_Body", bound=BaseModel)


async def _read_body(request: Request) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_BODY_BYTES:
            raise HTTPException(status_code=413, detail="request body too large")
    return bytes(body)


def _parse(model: type[_Body], raw: bytes) -> _Body:
    """Validate a JSON body into `model`; every failure is a 422 with a readable message."""
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False, include_context=False):
            where = ".".join(str(part) for part in error["loc"])
            problems.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
        raise InvalidInput("invalid request body: " + "; ".join(problems)) from None


def _webhook_url(settings: Settings, kind: ChannelKind) -> str:
    return settings.public_base_url + _WEBHOOK_PATHS[kind]


async def _channel_out(conn: Connection, channel: Channel, settings: Settings) -> ChannelOut:
    agent_id = await channels.bound_agent_id(conn, channel.id)
    agent = await agents.get_agent(conn, agent_id) if agent_id else None
    kind = ChannelKind(channel.kind)
    answering = await route_agent(conn, channel, voice=kind is ChannelKind.VOICE)
    return ChannelOut(
        id=channel.id,
        kind=kind,
        phone_number=channel.phone_number,
        active=channel.active,
        agent=AgentRef(id=agent.id, name=agent.name) if agent else None,
        answering_agent=AgentRef(id=answering.id, name=answering.name) if answering else None,
        webhook_url=_webhook_url(settings, kind),
        created_at=channel.created_at,
        updated_at=channel.updated_at,
    )


async def _own_channel(conn: Connection, workspace_id: UUID, channel_id: UUID) -> Channel:
    """The channel, when it belongs to this workspace; another workspace's is not found."""
    channel = await channels.get_channel(conn, channel_id)
    if channel.workspace_id != workspace_id:
        raise NotFound(f"channel {channel_id} not found")
    return channel


def _require_active(channel: Channel) -> None:
    if not channel.active:
        raise Conflict(
            f"channel {channel.id} is disconnected; connect {channel.phone_number} again instead"
        )


@router.get("")
async def channel_tiles(
    workspace_id: UUID, user: CurrentUser, pool: PoolDep, settings: SettingsDep
) -> ChannelTiles:
    """The SMS and voice tiles, both always present."""
    async with pool.acquire() as conn:
        await require_member(conn, workspace_id, user)
        workspace = await workspaces.get_workspace(conn, workspace_id)
        plan = await workspaces.get_plan(conn, workspace.plan)
        active = await channels.list_channels(conn, workspace_id, active_only=True)
        views = [await _channel_out(conn, channel, settings) for channel in active]
    tiles = []
    for kind in (ChannelKind.SMS, ChannelKind.VOICE):
        of_kind = [view for view in views if view.kind is kind]
        first = of_kind[0] if of_kind else None
        included = plan.includes(kind)
        tiles.append(
            ChannelTile(
                kind=kind,
                label=_LABELS[kind],
                starter_required=not included,
                connected=first is not None,
                channel_id=first.id if first else None,
                phone_number=first.phone_number if first else None,
                agent=first.agent if first else None,
                answering_agent=first.answering_agent if first else None,
                webhook_url=_webhook_url(settings, kind) if included else None,
                channels=of_kind,
            )
        )
    return ChannelTiles(workspace_id=workspace_id, plan=plan.code, tiles=tiles)


@router.post("", status_code=201)
async def connect_channel(
    workspace_id: UUID,
    request: Request,
    user: CurrentUser,
    pool: PoolDep,
    settings: SettingsDep,
) -> ChannelOut:
    """Normalise the number to E.164 and connect it (idempotent for this workspace)."""
    raw = await _read_body(request)
    async with pool.acquire() as conn:
        await require_member(conn, workspace_id, user, manage_channels=True)
        body = _parse(ChannelCreate, raw)
        channel = await channels.connect_channel(
            conn, workspace_id, body.kind, body.phone_number, body.agent_id
        )
        out = await _channel_out(conn, channel, settings)
    logger.info(
        "channels.connected",
        extra={"workspace": str(workspace_id), "channel": str(channel.id), "kind": channel.kind,
               "user": user},
    )  # fmt: skip
    return out


@router.patch("/{channel_id}")
async def update_channel(
    workspace_id: UUID,
    channel_id: UUID,
    request: Request,
    user: CurrentUser,
    pool: PoolDep,
    settings: SettingsDep,
) -> ChannelOut:
    """Change the number and/or the bound agent; routing follows on the next webhook."""
    raw = await _read_body(request)
    async with pool.acquire() as conn:
        await require_member(conn, workspace_id, user, manage_channels=True)
        body = _parse(ChannelUpdate, raw)
        given = body.model_fields_set
        if not given:
            raise InvalidInput("nothing to change: send phone_number and/or agent_id")
        if "phone_number" in given and body.phone_number is None:
            raise InvalidInput("phone_number cannot be null; DELETE the channel to disconnect it")
        channel = await _own_channel(conn, workspace_id, channel_id)
        _require_active(channel)
        if body.phone_number is not None:
            workspace = await workspaces.get_workspace(conn, workspace_id)
            plan = await workspaces.get_plan(conn, workspace.plan)
            if not plan.includes(ChannelKind(channel.kind)):
                raise PlanExcludesChannel(
                    f"the {plan.name} plan does not include {channel.kind}; upgrade to Starter"
                )
        channel = await channels.update_channel(
            conn,
            channel_id,
            phone_number=body.phone_number,
            agent_id=body.agent_id,
            unbind_agent="agent_id" in given and body.agent_id is None,
        )
        out = await _channel_out(conn, channel, settings)
    logger.info(
        "channels.updated",
        extra={"workspace": str(workspace_id), "channel": str(channel_id),
               "fields": sorted(given), "user": user},
    )  # fmt: skip
    return out


@router.delete("/{channel_id}", status_code=204)
async def disconnect_channel(
    workspace_id: UUID, channel_id: UUID, user: CurrentUser, pool: PoolDep
) -> Response:
    """Deactivate; later webhooks for the number find no channel. Repeating it is harmless."""
    async with pool.acquire() as conn:
        await require_member(conn, workspace_id, user, manage_channels=True)
        await _own_channel(conn, workspace_id, channel_id)
        await channels.disconnect_channel(conn, channel_id)
    logger.info(
        "channels.disconnected",
        extra={"workspace": str(workspace_id), "channel": str(channel_id), "user": user},
    )
    return Response(status_code=204)


@router.post("/{channel_id}/configure-twilio")
async def configure_twilio(
    workspace_id: UUID,
    channel_id: UUID,
    user: CurrentUser,
    pool: PoolDep,
    services: ServicesDep,
) -> TwilioConfigured:
    """Point the number's webhooks at us through Twilio's REST API, so nobody pastes a URL.

    Only the webhooks of the kinds this workspace has connected on the number are set: an
    SMS-only number keeps whatever voice setup its owner has elsewhere.
    """
    async with pool.acquire() as conn:
        await require_member(conn, workspace_id, user, manage_channels=True)
        channel = await _own_channel(conn, workspace_id, channel_id)
        _require_active(channel)
        same_number = await channels.list_channels(conn, workspace_id, active_only=True)
    kinds = {ChannelKind(c.kind) for c in same_number if c.phone_number == channel.phone_number}
    if services.twilio is None:
        raise MissingSetting(["TWILIO_ACCOUNT_SID"])
    base = services.settings.public_base_url
    fields: dict[str, str] = {}
    if ChannelKind.SMS in kinds:
        # The SMS status callback is set per message when we send, not on the number.
        fields |= {"SmsUrl": base + SMS_WEBHOOK_PATH, "SmsMethod": "POST"}
    if ChannelKind.VOICE in kinds:
        fields |= {
            "VoiceUrl": base + VOICE_WEBHOOK_PATH,
            "VoiceMethod": "POST",
            "StatusCallback": base + VOICE_STATUS_CALLBACK_PATH,
            "StatusCallbackMethod": "POST",
        }
    try:
        sid = await services.twilio.configure_number(channel.phone_number, fields=fields)
    except ProviderStatusError as exc:
        if exc.status == 404:
            raise InvalidInput(
                f"{channel.phone_number} is not a number of this server's Twilio account;"
                " buy or port it in Twilio first, or paste the webhook URLs by hand"
            ) from exc
        raise
    logger.info(
        "channels.twilio_configured",
        extra={"workspace": str(workspace_id), "channel": str(channel_id),
               "phone_number_sid": sid, "fields": sorted(fields), "user": user},
    )  # fmt: skip
    return TwilioConfigured(phone_number=channel.phone_number, phone_number_sid=sid, fields=fields)
