"""The real gateway app served over loopback HTTP in the test's event loop, for a browser.

`running_gateway` (tests/support/gateway.py) reaches the app in process; a browser needs a
socket. Same app, same lifespan (pool, clients, inline SMS replies), served by uvicorn.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from shared.settings import Settings
from tests.support.processes import free_port
from webhook_gateway.app import create_app


@dataclass(frozen=True)
class LiveGateway:
    app: FastAPI
    base_url: str  # http://127.0.0.1:PORT: where the browser goes


@asynccontextmanager
async def live_gateway(settings: Settings) -> AsyncIterator[LiveGateway]:
    """Serve `create_app(settings)` on a free loopback port until the block ends."""
    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        lifespan="on",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(), name="live-gateway")
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()  # raises what stopped it
                    raise RuntimeError("the gateway stopped before it served")
                await asyncio.sleep(0.05)
        yield LiveGateway(app=app, base_url=f"http://127.0.0.1:{port}")
    finally:
        # Open event streams (the console's SSE) would hold the graceful shutdown: end them.
        events = getattr(app.state, "console_events", None)
        if events is not None:
            await events.aclose()
        server.should_exit = True
        await task
