"""Route dependencies as `Annotated` aliases, so signatures read like sentences."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from shared.db import Pool
from shared.settings import Settings
from webhook_gateway.state import GatewayState


def get_state(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state


def get_pool(request: Request) -> Pool:
    return get_state(request).pool


def get_settings(request: Request) -> Settings:
    return get_state(request).settings


StateDep = Annotated[GatewayState, Depends(get_state)]
PoolDep = Annotated[Pool, Depends(get_pool)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
