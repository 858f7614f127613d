"""The FastAPI application: Twilio webhooks, the Channels API, health, recording links."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from shared.chat import TextChat
from shared.db import create_pool
from shared.recordings import build_store
from shared.settings import Settings
from webhook_gateway.errors import install_error_handlers
from webhook_gateway.routes import channels, health, recordings, sms, voice
from webhook_gateway.state import GatewayState
from webhook_gateway.twilio_rest import TwilioRest

logger = logging.getLogger("webhook_gateway")


def create_app(settings: Settings) -> FastAPI:
    """Build the app; the pool and clients open in the lifespan and close after it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings)
        state = GatewayState(
            settings=settings,
            pool=pool,
            recordings=build_store(settings),
            chat=TextChat(settings),
            twilio=TwilioRest(settings) if settings.twilio_account_sid else None,
        )
        app.state.gateway = state
        voice.install(app.state, state)  # voice services + start-up recording sweep
        try:
            await state.start()
            # Everything loaded so far lives as long as the process: move it out of the
            # cyclic GC's reach, so full collections stay short (they paused requests ~200 ms).
            gc.collect()
            gc.freeze()
            # Fewer, cheaper young-generation passes: requests allocate many short-lived
            # objects, and each pass is a pause every request in flight waits out.
            gc.set_threshold(20_000, 20, 20)
            yield
        finally:
            await state.aclose()
            await pool.close()

    app = FastAPI(title="wassla-voice gateway", lifespan=lifespan, docs_url=None, redoc_url=None)
    install_error_handlers(app)
    # Routes match in this order: Twilio's webhooks, most of the traffic, come first.
    app.include_router(sms.router)
    app.include_router(voice.router)
    app.include_router(health.router)
    app.include_router(recordings.router)
    app.include_router(channels.router)
    return app
