"""Route dependencies as `Annotated` aliases, so signatures read like sentences."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from shared.db import Pool
from shared.settings import Settings
from webhook_gateway.auth import bearer_token, verify_user_token
from webhook_gateway.state import GatewayState


def get_state(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state


def get_pool(request: Request) -> Pool:
    return get_state(request).pool


def get_settings(request: Request) -> Settings:
    return get_state(request).settings


# FastAPI runs a plain `def` dependency in a worker thread (a thread hop per request, per
# dependency); these `async def` twins run on the event loop.
async def _state_dep(request: Request) -> GatewayState:
    return get_state(request)


async def _pool_dep(request: Request) -> Pool:
    return get_state(request).pool


async def _settings_dep(request: Request) -> Settings:
    return get_state(request).settings


StateDep = Annotated[GatewayState, Depends(_state_dep)]
PoolDep = Annotated[Pool, Depends(_pool_dep)]
SettingsDep = Annotated[Settings, Depends(_settings_dep)]


def get_current_user(request: Request, settings: SettingsDep) -> str:
    """The user id of the request's bearer token (401 when missing or bad, 503 when unset)."""
    # Checked first: without a secret nobody can be authenticated, whatever they send.
    settings.require("jwt_secret")
    assert settings.jwt_secret is not None
    token = bearer_token(request.headers.get("authorization"))
    return verify_user_token(token, settings.jwt_secret)


CurrentUser = Annotated[str, Depends(get_current_user)]
