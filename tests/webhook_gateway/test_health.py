import httpx
import pytest

from shared.settings import Settings
from webhook_gateway.app import create_app


async def test_healthz_reports_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


async def test_gateway_refuses_to_start_on_unmigrated_database(
    settings: Settings, pg_dsn: str
) -> None:
    import asyncpg

    from shared.errors import SchemaNotCurrent

    admin = await asyncpg.connect(pg_dsn)
    await admin.execute("drop database if exists gw_unmigrated")
    await admin.execute("create database gw_unmigrated")
    await admin.close()
    unmigrated = settings.changed({"database_url": pg_dsn.replace("/postgres?", "/gw_unmigrated?")})
    app = create_app(unmigrated)
    with pytest.raises(SchemaNotCurrent, match="wassla migrate"):
        async with app.router.lifespan_context(app):
            pass
