"""Talk to your agent: a playground call from the browser, over LiveKit, to the voice worker.

The page's script (static/talk.js, on LiveKit's JavaScript client served from this package:
no CDN) asks `POST .../talk/session` for a LiveKit token and joins with the microphone. The
token names a fresh room and dispatches the worker's agent (WORKER_AGENT_NAME) to it with
the agent's id as job metadata, which is what the worker's playground admission reads
(worker/caller.py `playground_agent_id`, shared/admission.py `admit_playground`): the call is
a test conversation of the workspace, charged like any voice session, with its transcript
streamed back to the page as LiveKit text streams (`lk.transcription`).
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Request, Response
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from livekit import api

from shared import agents
from shared.errors import NotFound
from shared.models import Agent
from shared.settings import Settings
from webhook_gateway.auth import CONSOLE_HEADER
from webhook_gateway.deps import PoolDep, SettingsDep

from .session import ConsoleMember, ConsoleRoute
from .templating import render

logger = logging.getLogger("webhook_gateway.console")

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)  # the page
api_router = APIRouter(include_in_schema=False)  # what its script calls: JSON errors
WS = "/console/w/{workspace_id}"
# LiveKit's JavaScript client, pinned in vendor/package-lock.json, installed by scripts/install.
CLIENT_FILE = (
    Path(__file__).parent / "vendor/node_modules/livekit-client/dist/livekit-client.esm.mjs"
)
CLIENT_PATH = "/console/vendor/livekit-client.esm.mjs"
INSTALL_HINT = "Run scripts/install (it installs livekit-client with npm ci), then reload."
# A token only has to last until the browser has joined; LiveKit refreshes it after that.
_TOKEN_TTL = timedelta(minutes=10)
_MAX_ROOM_AGENT_METADATA = 200


def client_installed() -> bool:
    return CLIENT_FILE.is_file()


def voice_agents(all_agents: list[Agent]) -> list[Agent]:
    """The agents a playground call can talk to: active, and voice-capable."""
    return [a for a in all_agents if a.active and a.has_voice]


def session_token(settings: Settings, agent: Agent, user_id: str) -> tuple[str, str, str]:
    """(token, room, identity) for one playground call with `agent`."""
    assert settings.livekit.api_key and settings.livekit.api_secret
    room = f"playground-{uuid.uuid4().hex[:12]}"
    identity = f"console-{uuid.uuid4().hex[:10]}"
    metadata = json.dumps({"agent_id": str(agent.id)})
    assert len(metadata) <= _MAX_ROOM_AGENT_METADATA
    token = (
        api.AccessToken(settings.livekit.api_key, settings.livekit.api_secret)
        .with_identity(identity)
        .with_name(user_id)
        .with_ttl(_TOKEN_TTL)
        .with_grants(
            api.VideoGrants(
                room_join=True,
                room=room,
                can_publish=True,
                can_subscribe=True,
                can_publish_data=True,
            )
        )
        .with_room_config(
            api.RoomConfiguration(
                agents=[
                    api.RoomAgentDispatch(agent_name=settings.worker.agent_name, metadata=metadata)
                ]
            )
        )
        .to_jwt()
    )
    return token, room, identity


@router.get(WS + "/talk")
async def talk_page(
    request: Request, member: ConsoleMember, pool: PoolDep, settings: SettingsDep
) -> Response:
    async with pool.acquire() as conn:
        choices = voice_agents(await agents.list_agents(conn, member.workspace.id))
    return render(
        request,
        "talk.html",
        workspace_id=member.workspace.id,
        member=member,
        agents=choices,
        livekit_configured=settings.livekit.configured,
        client_installed=client_installed(),
        client_path=CLIENT_PATH,
        install_hint=INSTALL_HINT,
        session_url=f"/console/w/{member.workspace.id}/talk/session",
        console_header=CONSOLE_HEADER,
    )


@api_router.post(WS + "/talk/session")
async def talk_session(
    request: Request,
    member: ConsoleMember,
    pool: PoolDep,
    settings: SettingsDep,
    agent_id: Annotated[UUID, Body(embed=True)],
) -> Response:
    """A LiveKit URL and token that join a new room with `agent_id` dispatched to it."""
    if not request.headers.get(CONSOLE_HEADER):
        # A cross-site form cannot set the header: starting a paid session needs the page.
        return JSONResponse({"detail": f"send the {CONSOLE_HEADER} header"}, status_code=403)
    member.require_change()  # a session spends the workspace's credit
    settings.require("livekit.url", "livekit.api_key", "livekit.api_secret")  # else 503
    async with pool.acquire() as conn:
        found = await agents.list_agents(conn, member.workspace.id)
    agent = next((a for a in voice_agents(found) if a.id == agent_id), None)
    if agent is None:
        raise NotFound("no active voice agent with that id in this workspace")
    token, room, identity = session_token(settings, agent, member.user_id)
    logger.info(
        "console.talk_session",
        extra={
            "workspace_id": str(member.workspace.id),
            "agent_id": str(agent.id),
            "room": room,
            "user": member.user_id,
        },
    )
    body: dict[str, Any] = {
        "url": settings.livekit.url,
        "token": token,
        "room": room,
        "identity": identity,
        "agent": agent.name,
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@api_router.get(CLIENT_PATH)
async def livekit_client() -> Response:
    """The pinned livekit-client bundle (one self-contained ES module)."""
    if not client_installed():
        return PlainTextResponse(
            f"livekit-client is not installed. {INSTALL_HINT}", status_code=404
        )
    return FileResponse(
        CLIENT_FILE,
        media_type="text/javascript",
        # Pinned: the file only changes with the lock file, and then scripts/install runs.
        headers={"Cache-Control": "public, max-age=3600"},
    )
