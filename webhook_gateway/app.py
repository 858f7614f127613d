"""The FastAPI application: Twilio webhooks, the Channels API, health, recording links."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from shared.db import create_pool
from shared.recordings import build_store
from shared.settings import Settings
from webhook_gateway.errors import install_error_handlers
from webhook_gateway.routes import health, recordings
from webhook_gateway.state import GatewayState

logger = logging.getLogger("webhook_gateway")


def create_app(settings: Settings) -> FastAPI:
    """Build the app; the pool and clients open in the lifespan and close after it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings)
        state = GatewayState(settings=settings, pool=pool, recordings=build_store(settings))
        app.state.gateway = state
        try:
            await state.start()
            yield
        finally:
            await state.aclose()
            await pool.close()

    app = FastAPI(title="wassla-voice gateway", lifespan=lifespan, docs_url=None, redoc_url=None)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(recordings.router)
    return app
