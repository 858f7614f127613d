"""The console's tests: the real gateway served on loopback (tests/support/live_gateway.py),
real Postgres, the OpenAI and Twilio stand-ins, and headless Chromium (tests/support/browser.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
from playwright.async_api import Page

from shared import workspaces
from shared.models import Agent, Channel, Role, Workspace
from shared.settings import Settings
from tests.conftest import JWT_TEST_SECRET
from tests.support import factories
from tests.support.live_gateway import LiveGateway, live_gateway
from webhook_gateway.auth import mint_user_token

OWNER = "user-owner"
VIEWER = "user-viewer"
OUTSIDER = "user-of-another-workspace"
SMS_NUMBER = "+15551234567"


def token(user: str, *, ttl_seconds: int = 600, secret: str = JWT_TEST_SECRET) -> str:
    return mint_user_token(user, secret, ttl_seconds=ttl_seconds)


@dataclass(frozen=True)
class Demo:
    workspace: Workspace
    agent: Agent
    sms: Channel
    other: Workspace  # OUTSIDER's workspace; OUTSIDER is not a member of `workspace`


@pytest.fixture
async def demo(pool: asyncpg.Pool) -> Demo:
    async with pool.acquire() as conn:
        workspace = await factories.workspace(conn, name="Acme Tea")
        agent = await factories.agent(conn, workspace.id)
        sms = await factories.channel(conn, workspace.id, number=SMS_NUMBER)
        await workspaces.add_member(conn, workspace.id, OWNER, Role.OWNER)
        await workspaces.add_member(conn, workspace.id, VIEWER, Role.VIEWER)
        other = await factories.workspace(conn, name="Other Co")
        await workspaces.add_member(conn, other.id, OUTSIDER, Role.OWNER)
    return Demo(workspace, agent, sms, other)


@pytest.fixture
async def gateway(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[LiveGateway]:
    async with live_gateway(settings) as live:
        yield live


async def sign_in(page: Page, gateway: LiveGateway, user: str) -> None:
    """Follow a sign-in link, as a person would from `wassla console-link`."""
    await page.goto(f"{gateway.base_url}/console/login?token={token(user)}")
