"""Who is looking at the console: sign-in by link, the session cookie, the member's role, and
the HTML error pages a person sees instead of the API's JSON.

The session is the Channels API's own kind of token (HS256, WASSLA_JWT_SECRET,
webhook_gateway/auth.py) in an HttpOnly cookie: `/console/login?token=…` checks the link's
token and sets a fresh one. Roles as in the Channels API: every member sees, owner and admin
change (their changes go through the Channels API, which accepts the same cookie).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute

from shared import workspaces
from shared.errors import Forbidden, Unauthenticated, WasslaError
from shared.models import Role, Workspace
from webhook_gateway.auth import (
    SESSION_COOKIE,
    mint_user_token,
    require_member,
    token_use,
    verify_user_token,
)
from webhook_gateway.deps import PoolDep, SettingsDep
from webhook_gateway.errors import status_for

from .templating import render

logger = logging.getLogger("webhook_gateway.console")

SESSION_SECONDS = 12 * 3600  # a working day; a sign-in link itself lives minutes
SESSION_USE = "console-session"  # the session cookie's token, which /console/login refuses
_MAX_TOKEN_CHARS = 4096  # a JWT of ours is ~200 characters; Supabase's under 2 KB

_TITLES = {
    401: "Sign in to the console",
    403: "Your role cannot do that",
    404: "Not found",
    503: "The console is not available",
}


class ConsoleRoute(APIRoute):
    """A console route: our errors become a page a person can read, not the API's JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def console_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except WasslaError as exc:
                return error_page(request, status_for(exc), str(exc))
            except RequestValidationError:
                # A malformed id in the path is a page that does not exist.
                return error_page(request, 404, "There is no such page.")

        return console_handler


def error_page(request: Request, status: int, detail: str) -> Response:
    if status >= 500 and status != 503:
        logger.error("console.error", extra={"path": request.url.path, "status": status})
    hint = ""
    if status == 401:
        hint = (
            "Ask an owner of your workspace for a sign-in link, or run"
            " `wassla console-link --user YOUR_USER_ID` on the server."
        )
    elif status == 404:
        hint = "It may belong to a workspace you are not a member of."
    response = render(
        request,
        "error.html",
        status_code=status,
        title=_TITLES.get(status, "Something went wrong"),
        detail=detail,
        hint=hint,
    )
    if status == 401:
        response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _secret(settings: SettingsDep) -> str:
    settings.require("jwt_secret")
    assert settings.jwt_secret is not None
    return settings.jwt_secret


async def _console_user(request: Request, settings: SettingsDep) -> str:
    secret = _secret(settings)
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise Unauthenticated("You are not signed in.", reason="missing")
    try:
        return verify_user_token(token, secret)
    except Unauthenticated as exc:
        raise Unauthenticated(f"Your sign-in is no longer valid ({exc}).") from None


ConsoleUser = Annotated[str, Depends(_console_user)]


@dataclass(frozen=True)
class Member:
    """The signed-in user as a member of the workspace the page is about."""

    user_id: str
    workspace: Workspace
    role: Role

    @property
    def can_change(self) -> bool:
        return self.role.can_manage_channels

    def require_change(self) -> None:
        if not self.can_change:
            raise Forbidden(
                f"The {self.role.value} role can look but not change; ask an owner or admin."
            )


async def _console_member(workspace_id: UUID, user: ConsoleUser, pool: PoolDep) -> Member:
    async with pool.acquire() as conn:
        role = await require_member(conn, workspace_id, user)  # another workspace: 404
        workspace = await workspaces.get_workspace(conn, workspace_id)
    return Member(user_id=user, workspace=workspace, role=role)


ConsoleMember = Annotated[Member, Depends(_console_member)]


def login(token: str, settings: SettingsDep) -> Response:
    """Check a sign-in link's token and start a session with a token of our own."""
    secret = _secret(settings)
    if len(token) > _MAX_TOKEN_CHARS:
        raise Unauthenticated("This sign-in link is not valid.")
    try:
        user = verify_user_token(token, secret)
    except Unauthenticated as exc:
        logger.info("console.sign_in_refused", extra={"reason": str(exc)})
        raise Unauthenticated(f"This sign-in link is not valid: {exc}.") from None
    if token_use(token) == SESSION_USE:
        # A session signs nobody in again: renewing itself, a stolen cookie would never end.
        logger.info("console.sign_in_refused", extra={"reason": "session token"})
        raise Unauthenticated("This sign-in link is not valid: it is a session, not a link.")
    response = RedirectResponse("/console", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        mint_user_token(user, secret, ttl_seconds=SESSION_SECONDS, use=SESSION_USE),
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="lax",
        # Production is https behind Fly's proxy; local dev and tests are plain http.
        secure=settings.env == "production",
    )
    logger.info("console.signed_in", extra={"user": user})
    return response


def logout() -> Response:
    response = RedirectResponse("/console/signed-out", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
