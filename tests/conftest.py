"""Real components, started once per test run: embedded Postgres, moto's S3 server, and
loopback stand-ins for the paid APIs (OpenAI-compatible, Twilio REST) that settings point at.

Each test that asks for `pool` gets clean tables (plans and the migration table survive);
`app` and `client` are the real gateway over them. Helpers live in tests/support/.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from shared import migrate
from shared.devdb import start_embedded, stop_embedded
from shared.settings import Settings
from tests.standins.openai_api import OpenAIStandIn
from tests.standins.twilio_api import TwilioStandIn
from tests.support.browser import (  # noqa: F401 - fixtures: page, browser_page (Chromium)
    browser_page,
    chromium_browsers,
    page,
    playwright_driver,
)
from tests.support.gateway import gateway_client
from tests.support.worker_process import RECORDINGS_BUCKET, recordings_store
from webhook_gateway.app import create_app

TWILIO_TEST_TOKEN = "test-twilio-auth-token"
TWILIO_ACCOUNT_SID = "AC" + "0" * 32
JWT_TEST_SECRET = "test-jwt-secret-0123456789abcdef0123456789abcdef"
PUBLIC_BASE_URL = "https://gateway.example.test"


@pytest.fixture(scope="session")
def data_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: its parents are 0700 and Postgres runs as its own system user.
    path = Path(tempfile.mkdtemp(prefix="wassla-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_dsn(data_dir: Path) -> Iterator[str]:
    yield start_embedded(data_dir)
    stop_embedded(data_dir)  # before data_dir goes, or the server outlives the run


@pytest.fixture(scope="session")
async def _migrated(pg_dsn: str) -> str:
    conn = await asyncpg.connect(pg_dsn)
    try:
        await migrate.apply(conn)
    finally:
        await conn.close()
    return pg_dsn


@pytest.fixture(scope="session")
def _openai_standin() -> Iterator[OpenAIStandIn]:
    standin = OpenAIStandIn().start()
    yield standin
    standin.stop()


@pytest.fixture(scope="session")
def _twilio_standin() -> Iterator[TwilioStandIn]:
    standin = TwilioStandIn(account_sid=TWILIO_ACCOUNT_SID, auth_token=TWILIO_TEST_TOKEN).start()
    yield standin
    standin.stop()


@pytest.fixture
def openai_standin(_openai_standin: OpenAIStandIn) -> OpenAIStandIn:
    """The OpenAI-compatible stand-in every test's settings point at, with fresh scripts."""
    _openai_standin.reset()
    return _openai_standin


@pytest.fixture
def twilio_standin(_twilio_standin: TwilioStandIn) -> TwilioStandIn:
    """The Twilio REST stand-in every test's settings point at, with fresh logs."""
    _twilio_standin.reset()
    return _twilio_standin


@pytest.fixture(scope="session")
def base_settings(
    pg_dsn: str, data_dir: Path, _openai_standin: OpenAIStandIn, _twilio_standin: TwilioStandIn
) -> Settings:
    """Settings as the test run's processes see them; tests copy and adjust with changed()."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=pg_dsn,
        data_dir=data_dir,
        public_base_url=PUBLIC_BASE_URL,
        twilio={
            "account_sid": TWILIO_ACCOUNT_SID,
            "auth_token": TWILIO_TEST_TOKEN,
            "api_base_url": _twilio_standin.base_url,
        },
        jwt_secret=JWT_TEST_SECRET,
        openai={
            "api_key": "test-openai-key",
            "base_url": _openai_standin.base_url,
            "timeout_seconds": 5.0,
        },
    )


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    return base_settings.model_copy()


@pytest.fixture(scope="session")
async def _session_pool(_migrated: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(_migrated, min_size=1, max_size=12)
    yield pool
    await pool.close()


async def truncate_all(pool: asyncpg.Pool) -> None:
    tables = await pool.fetch(
        "select tablename from pg_tables where schemaname = 'public'"
        " and tablename not in ('plans', 'schema_migrations')"
    )
    if tables:
        names = ", ".join(f'"{t["tablename"]}"' for t in tables)
        await pool.execute(f"truncate {names} restart identity cascade")


@pytest.fixture
async def pool(_session_pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Pool]:
    """The shared pool over clean tables."""
    await truncate_all(_session_pool)
    yield _session_pool


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3-protocol server on loopback (a real HTTP server, in a thread)."""
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
async def recordings_bucket(s3_endpoint: str) -> str:
    """The bucket the voice workers record calls into, created in moto's S3."""
    await recordings_store(s3_endpoint).ensure_bucket()
    return RECORDINGS_BUCKET


@pytest.fixture
async def app(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[FastAPI]:
    """The real app with its lifespan (pool, clients, start-up hooks) running."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_client(app, settings) as c:
        yield c
