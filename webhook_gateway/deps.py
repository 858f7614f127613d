"""Route dependencies as `Annotated` aliases, so signatures read like sentences."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from shared.db import Pool
from shared.services import Services
from shared.settings import Settings
from webhook_gateway.auth import (
    CONSOLE_HEADER,
    SESSION_COOKIE,
    bearer_token,
    cookie_token,
    verify_user_token,
)
from webhook_gateway.gateway import Gateway


def gateway_of(request: Request) -> Gateway:
    """The app's Gateway (set by the lifespan in app.py): the one typed way to reach it."""
    gateway: Gateway = request.app.state.gateway
    return gateway


# `async def`: FastAPI runs a plain `def` dependency in a worker thread, a hop per request.
async def _gateway_dep(request: Request) -> Gateway:
    return gateway_of(request)


async def _services_dep(request: Request) -> Services:
    return gateway_of(request).services


async def _pool_dep(request: Request) -> Pool:
    return gateway_of(request).services.pool


async def _settings_dep(request: Request) -> Settings:
    return gateway_of(request).services.settings


GatewayDep = Annotated[Gateway, Depends(_gateway_dep)]
ServicesDep = Annotated[Services, Depends(_services_dep)]
PoolDep = Annotated[Pool, Depends(_pool_dep)]
SettingsDep = Annotated[Settings, Depends(_settings_dep)]


def get_current_user(request: Request, settings: SettingsDep) -> str:
    """The user id of the request's bearer token, or of the console's session cookie when no
    Authorization header is sent (401 when missing or bad, 503 when the secret is unset)."""
    # Checked first: without a secret nobody can be authenticated, whatever they send.
    settings.require("jwt_secret")
    assert settings.jwt_secret is not None
    authorization = request.headers.get("authorization")
    cookie = request.cookies.get(SESSION_COOKIE)
    if authorization is None and cookie is not None:  # the console, calling this API
        token = cookie_token(
            cookie, method=request.method, console_header=request.headers.get(CONSOLE_HEADER)
        )
    else:
        token = bearer_token(authorization)
    return verify_user_token(token, settings.jwt_secret)


CurrentUser = Annotated[str, Depends(get_current_user)]
