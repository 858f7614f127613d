"""The FastAPI application: Twilio webhooks, the Channels API, health, recording links."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from shared.services import Services
from shared.settings import Settings
from webhook_gateway.errors import install_error_handlers
from webhook_gateway.gateway import Gateway
from webhook_gateway.routes import channels, health, recordings, sms, voice

logger = logging.getLogger("webhook_gateway")


def create_app(settings: Settings) -> FastAPI:
    """Build the app; the pool and clients open in the lifespan and close after it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gateway = Gateway.build(await Services.open(settings))
        app.state.gateway = gateway
        try:
            await gateway.start()
            # Everything loaded so far lives as long as the process: move it out of the
            # cyclic GC's reach, so full collections stay short (long ones paused requests).
            gc.collect()
            gc.freeze()
            # Fewer, cheaper young-generation passes: requests allocate many short-lived
            # objects, and each pass is a pause every request in flight waits out.
            gc.set_threshold(20_000, 20, 20)
            yield
        finally:
            await gateway.aclose()

    app = FastAPI(title="wassla-voice gateway", lifespan=lifespan, docs_url=None, redoc_url=None)
    install_error_handlers(app)
    # Routes match in this order: Twilio's webhooks, most of the traffic, come first.
    app.include_router(sms.router)
    app.include_router(voice.router)
    app.include_router(health.router)
    app.include_router(recordings.router)
    app.include_router(channels.router)
    return app
