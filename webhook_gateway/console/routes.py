"""The console's pages: sign-in, the workspace list, Inbox, a conversation, Channels, Billing,
and the live event stream their scripts listen to.

Pages are server-rendered; each live region is a fragment route the page's script re-reads
when the workspace's event stream (`/events`, fed by Postgres NOTIFY) says it changed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from urllib.parse import urlsplit
from uuid import UUID

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse

from shared import inbox
from shared.recordings import Recording
from shared.services import Services
from shared.settings import Settings
from webhook_gateway.auth import CONSOLE_HEADER
from webhook_gateway.deps import PoolDep, ServicesDep, SettingsDep
from webhook_gateway.routes import channels as channels_api

from . import session
from .live import LiveEvents
from .session import ConsoleMember, ConsoleRoute, ConsoleUser
from .templating import render

logger = logging.getLogger("webhook_gateway.console")

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
WS = "/console/w/{workspace_id}"
_HEARTBEAT_SECONDS = 15.0  # under Fly's proxy idle timeout (60 s): keeps a quiet stream open


def live_events(request: Request) -> LiveEvents:
    events: LiveEvents = request.app.state.console_events
    return events


@router.get("/")
async def root() -> Response:
    return RedirectResponse("/console", status_code=307)


@router.get("/console/login")
async def login(token: str, settings: SettingsDep) -> Response:
    return session.login(token, settings)


@router.post("/console/logout")
async def logout() -> Response:
    return session.logout()


@router.get("/console/signed-out")
async def signed_out(request: Request) -> Response:
    return render(
        request,
        "error.html",
        title="Signed out",
        detail="You are signed out of the console.",
        hint="Open a new sign-in link to come back.",
    )


@router.get("/console")
async def home(request: Request, user: ConsoleUser, pool: PoolDep) -> Response:
    """One workspace: its inbox; several: the list to choose from."""
    async with pool.acquire() as conn:
        member_of = await inbox.member_workspaces(conn, user)
    if len(member_of) == 1:
        return RedirectResponse(f"/console/w/{member_of[0].id}/inbox", status_code=303)
    return render(request, "workspaces.html", user=user, workspaces=member_of)


@router.get(WS)
async def workspace_home(member: ConsoleMember) -> Response:
    return RedirectResponse(f"/console/w/{member.workspace.id}/inbox", status_code=303)


# --- Inbox ------------------------------------------------------------------------------------


@router.get(WS + "/inbox")
async def inbox_page(request: Request, member: ConsoleMember, pool: PoolDep) -> Response:
    async with pool.acquire() as conn:
        rows = await inbox.conversation_rows(conn, member.workspace.id)
    return render(request, "inbox.html", workspace_id=member.workspace.id, member=member, rows=rows)


@router.get(WS + "/inbox/rows")
async def inbox_rows(request: Request, member: ConsoleMember, pool: PoolDep) -> Response:
    async with pool.acquire() as conn:
        rows = await inbox.conversation_rows(conn, member.workspace.id)
    return render(request, "_inbox_rows.html", workspace_id=member.workspace.id, rows=rows)


# --- A conversation ---------------------------------------------------------------------------


def _same_origin(url: str, settings: Settings) -> str:
    """A link on this gateway made relative, so it works on whatever host the page was
    opened (the local store signs links on PUBLIC_BASE_URL; the console is served here)."""
    base = settings.public_base_url.rstrip("/")
    if url.startswith(base + "/"):
        parts = urlsplit(url)
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return url


async def _recording_links(
    services: Services, recordings: list[Recording]
) -> list[tuple[Recording, str]]:
    ttl = services.settings.recordings.url_ttl_seconds
    links = []
    for recording in recordings:
        url = await services.recordings.presign_get(recording.bucket_key, ttl)
        links.append((recording, _same_origin(url, services.settings)))
    return links


async def _conversation(
    request: Request,
    member: ConsoleMember,
    conversation_id: UUID,
    services: ServicesDep,
    template: str,
) -> Response:
    async with services.pool.acquire() as conn:
        view = await inbox.conversation_view(conn, member.workspace.id, conversation_id)
    return render(
        request,
        template,
        workspace_id=member.workspace.id,
        member=member,
        view=view,
        recordings=await _recording_links(services, view.recordings),
    )


@router.get(WS + "/conversations/{conversation_id}")
async def conversation_page(
    request: Request, member: ConsoleMember, conversation_id: UUID, services: ServicesDep
) -> Response:
    return await _conversation(request, member, conversation_id, services, "conversation.html")


@router.get(WS + "/conversations/{conversation_id}/timeline")
async def conversation_timeline(
    request: Request, member: ConsoleMember, conversation_id: UUID, services: ServicesDep
) -> Response:
    return await _conversation(request, member, conversation_id, services, "_timeline.html")


# --- Channels ---------------------------------------------------------------------------------


@router.get(WS + "/channels")
async def channels_page(
    request: Request, member: ConsoleMember, pool: PoolDep, settings: SettingsDep
) -> Response:
    """The tiles as the Channels API gives them; the page's forms call that API."""
    tiles = await channels_api.channel_tiles(member.workspace.id, member.user_id, pool, settings)
    return render(
        request,
        "channels.html",
        workspace_id=member.workspace.id,
        member=member,
        tiles=tiles,
        api_base=f"/api/workspaces/{member.workspace.id}/channels",
        console_header=CONSOLE_HEADER,
    )


# --- Billing ----------------------------------------------------------------------------------


async def _billing(
    request: Request, member: ConsoleMember, pool: PoolDep, template: str
) -> Response:
    async with pool.acquire() as conn:
        billing = await inbox.billing_view(conn, member.workspace.id)
    return render(
        request, template, workspace_id=member.workspace.id, member=member, billing=billing
    )


@router.get(WS + "/billing")
async def billing_page(request: Request, member: ConsoleMember, pool: PoolDep) -> Response:
    return await _billing(request, member, pool, "billing.html")


@router.get(WS + "/billing/live")
async def billing_live(request: Request, member: ConsoleMember, pool: PoolDep) -> Response:
    return await _billing(request, member, pool, "_billing_live.html")


# --- The live stream --------------------------------------------------------------------------


@router.get(WS + "/events")
async def events(request: Request, member: ConsoleMember) -> Response:
    """Server-sent events: one `change` per committed change of the workspace (kind and
    conversation id only), `ready` once listening (pages re-read then), a comment every
    15 s. The stream ends when this browser falls behind; EventSource reconnects."""
    feed = live_events(request)
    workspace_id = member.workspace.id

    async def stream() -> AsyncIterator[str]:
        try:
            async with feed.subscribe(workspace_id) as subscription:
                yield "retry: 2000\nevent: ready\ndata: {}\n\n"
                while True:
                    try:
                        async with asyncio.timeout(_HEARTBEAT_SECONDS):
                            event = await subscription.next()
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    if event is None:
                        return
                    yield f"event: change\ndata: {event.as_json()}\n\n"
        except (OverflowError, TimeoutError, RuntimeError) as exc:
            # Full, or the database did not answer: the browser retries in 2 s.
            logger.warning("console.stream_refused", extra={"error": repr(exc)})
            yield "retry: 5000\nevent: unavailable\ndata: {}\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
