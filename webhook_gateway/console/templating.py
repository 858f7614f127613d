"""The console's Jinja2 environment and its one way to answer with a page.

Autoescaping is on for every template: contact names, message bodies and model output are
untrusted text, shown as text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


@dataclass(frozen=True)
class NavItem:
    label: str
    path: str  # under /console/w/{workspace}/


# The pages of a workspace, in the nav's order; a page adds itself here and to routes.
NAV: list[NavItem] = [
    NavItem("Inbox", "inbox"),
    NavItem("Channels", "channels"),
    NavItem("Billing", "billing"),
    NavItem("Talk to your agent", "talk"),
    NavItem("Text your agent", "text"),
]


def money(minor: int | None, currency: str = "USD") -> str:
    """Integer minor units as `$1.23` (USD) or `1.23 EUR`."""
    value = minor or 0
    sign = "-" if value < 0 else ""
    whole, cents = divmod(abs(value), 100)
    amount = f"{whole:,}.{cents:02d}"
    return f"{sign}${amount}" if currency == "USD" else f"{sign}{amount} {currency}"


def duration(seconds: int | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(max(seconds, 0), 60)
    return f"{minutes}:{secs:02d}"


def when(moment: datetime | None) -> str:
    """UTC, to the second: the console is read by operators across time zones."""
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=jinja2.StrictUndefined,  # a missing variable is a bug, not an empty string
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(money=money, duration=duration, when=when)


def render_text(template: str, **context: Any) -> str:
    return _env.get_template(template).render(**context)


def render(
    request: Request,
    template: str,
    *,
    status_code: int = 200,
    workspace_id: UUID | None = None,
    **context: Any,
) -> HTMLResponse:
    """A full page or fragment; pages of a workspace get its nav (`workspace_id`)."""
    settings = request.app.state.gateway.services.settings
    html = render_text(
        template,
        request=request,
        # Without a key no reply is generated: every page says so, and how to fix it.
        agent_cannot_think=not settings.openai.api_key,
        nav=NAV,
        workspace_id=workspace_id,
        current=request.url.path,
        **context,
    )
    return HTMLResponse(
        html,
        status_code=status_code,
        # Pages carry a member's data: never cached by a proxy or kept by the browser.
        headers={"Cache-Control": "no-store"},
    )
