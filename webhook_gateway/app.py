"""The FastAPI application: Twilio webhooks, the Channels API, health, recording links, and
the browser console."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from shared import metrics
from shared.services import Services
from shared.settings import Settings
from webhook_gateway import console
from webhook_gateway.errors import install_error_handlers
from webhook_gateway.gateway import Gateway
from webhook_gateway.metrics import RequestMetrics
from webhook_gateway.routes import channels, health, recordings, sms, voice

logger = logging.getLogger("webhook_gateway")


def create_app(settings: Settings) -> FastAPI:
    """Build the app; the pool and clients open in the lifespan and close after it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gateway = Gateway.build(await Services.open(settings))
        app.state.gateway = gateway
        app.state.console_events = console_events = console.LiveEvents(settings)
        scrape = None
        try:
            if settings.metrics_port is not None:
                scrape = await metrics.serve(settings.metrics_port)
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
            if scrape is not None:
                scrape.close()
            await console_events.aclose()
            await gateway.aclose()

    # The API description is for development: production serves no schema or docs routes.
    openapi_url = None if settings.env == "production" else "/openapi.json"
    app = FastAPI(
        title="wassla-voice gateway",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=openapi_url,
    )
    install_error_handlers(app)
    # Routes match in this order: Twilio's webhooks, most of the traffic, come first.
    routers = [sms.router, voice.router, health.router, recordings.router, channels.router]
    routers += console.routers  # the browser console at /console (and / redirects there)
    for router in routers:
        app.include_router(router)
    app.mount(console.STATIC_PATH, console.static_files(), name="console-static")
    app.add_middleware(RequestMetrics, routes=[r for router in routers for r in router.routes])
    return app
