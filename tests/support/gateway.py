"""The real gateway app with its lifespan (pool, clients, start-up hooks), and a client to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from shared.settings import Settings
from webhook_gateway.app import create_app


def gateway_client(app: FastAPI, settings: Settings) -> httpx.AsyncClient:
    """A client that reaches `app` in process, at its public URL (as Twilio addresses it)."""
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url=settings.public_base_url)


@asynccontextmanager
async def running_gateway(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """One gateway process: the app built from `settings`, its lifespan running, a client."""
    app = create_app(settings)
    async with app.router.lifespan_context(app), gateway_client(app, settings) as client:
        yield app, client
