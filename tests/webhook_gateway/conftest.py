from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from shared.settings import Settings
from webhook_gateway.app import create_app


@pytest.fixture
async def app(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[FastAPI]:
    """The real app with its lifespan (pool, clients, start-up hooks) running."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=settings.public_base_url) as c:
        yield c
