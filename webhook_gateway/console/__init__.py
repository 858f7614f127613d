"""The browser console at `/console`: Inbox, a conversation live, Channels, Billing.

Mounted by webhook_gateway/app.py: `router` (pages, fragments, the event stream), `static`
(CSS and JS from this package, no CDN) and `LiveEvents` (the process's NOTIFY listener,
opened in the app's lifespan). A new page: a route on `router` (or a router of its own
included in `routers`) with `ConsoleMember` for the signed-in member, rendered with
`templating.render(..., workspace_id=...)` from a template extending `base.html`, and a
`NavItem` in `templating.NAV`.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.staticfiles import StaticFiles

from . import talk, text
from .live import LiveEvents
from .routes import router
from .templating import STATIC

STATIC_PATH = "/console/static"

routers: list[APIRouter] = [router, talk.router, talk.api_router, text.router, text.api_router]


def static_files() -> StaticFiles:
    return StaticFiles(directory=STATIC)


__all__ = ["STATIC_PATH", "LiveEvents", "router", "routers", "static_files"]
