"""The API's schema and docs pages are for development: production serves none of them."""

from __future__ import annotations

import asyncpg
import httpx

from shared.settings import Settings
from tests.support.gateway import running_gateway

DOC_PATHS = ("/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect")


async def test_production_serves_no_openapi_schema_or_docs(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    production = settings.changed({"env": "production"})
    async with running_gateway(production) as (_, client):
        for path in DOC_PATHS:
            response = await client.get(path)
            assert response.status_code == 404, path
            assert "openapi" not in response.text.lower()
        assert (await client.get("/healthz")).status_code == 200  # the app itself runs


async def test_development_serves_the_openapi_schema(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "wassla-voice gateway"
