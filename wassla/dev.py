"""`wassla dev`: the whole product on one machine with embedded defaults.

Embedded Postgres (unless DATABASE_URL is set), migrations, a demo workspace with an agent and
numbers when the database is empty, the gateway on http://127.0.0.1:8080, and the voice
worker when LiveKit settings are present. Ctrl-C stops everything.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import Any

import asyncpg
import jwt

from shared import agents, channels, migrate, workspaces
from shared.agents import AgentFields
from shared.db import resolve_dsn
from shared.models import BillingMode, Role
from shared.settings import Settings

DEMO_NUMBER = "+15551234567"
DEMO_USER = "demo-user"
DEV_TWILIO_TOKEN = "dev-twilio-auth-token"
DEV_JWT_SECRET = "dev-jwt-secret-change-me-in-production-0123456789"


def _say(line: str) -> None:
    print(f"[wassla dev] {line}", flush=True)  # noqa: T201


async def _prepare(settings: Settings, seed: bool) -> tuple[str, dict[str, Any] | None]:
    dsn = await resolve_dsn(settings)
    conn = await asyncpg.connect(dsn)
    try:
        applied = await migrate.apply(conn)
        _say(f"migrations applied: {', '.join(applied)}" if applied else "schema is current")
        if not seed or await workspaces.list_workspaces(conn):
            return dsn, None
        workspace = await workspaces.create_workspace(
            conn,
            name="Demo",
            plan="starter",
            billing_mode=BillingMode.LIVE,
            credit_balance_minor=5_000,
        )
        await workspaces.add_member(conn, workspace.id, DEMO_USER, Role.OWNER)
        agent = await agents.create_agent(
            conn,
            workspace.id,
            AgentFields(
                name="Demo agent",
                instructions="You are the friendly support agent of a demo shop. Be brief.",
                greeting="Hello! Thanks for calling the demo shop. How can I help?",
            ),
        )
        for kind in ("sms", "voice"):
            await channels.connect_channel(conn, workspace.id, kind, DEMO_NUMBER, agent.id)
        return dsn, {"workspace": str(workspace.id), "agent": str(agent.id)}
    finally:
        await conn.close()


def run_dev(settings: Settings, *, seed: bool = True) -> int:
    """Run until Ctrl-C; returns the exit status."""
    dsn, demo = asyncio.run(_prepare(settings, seed))
    env = dict(os.environ)
    env["DATABASE_URL"] = dsn
    env["WASSLA_DATA_DIR"] = str(settings.data_dir)
    env.setdefault("HOST", "127.0.0.1")
    env.setdefault("PORT", "8080")
    env.setdefault("PUBLIC_BASE_URL", f"http://127.0.0.1:{env['PORT']}")
    if not settings.twilio.auth_token:
        env["TWILIO_AUTH_TOKEN"] = DEV_TWILIO_TOKEN
        _say(f"TWILIO_AUTH_TOKEN not set: signing webhooks with the dev token {DEV_TWILIO_TOKEN!r}")
    jwt_secret = settings.jwt_secret or DEV_JWT_SECRET
    env["WASSLA_JWT_SECRET"] = jwt_secret
    if demo:
        _say(f"demo workspace {demo['workspace']} with agent {demo['agent']} on {DEMO_NUMBER}")
    token = jwt.encode({"sub": DEMO_USER, "exp": int(time.time()) + 86_400}, jwt_secret, "HS256")
    _say(f"Channels API token for {DEMO_USER} (24 h): {token}")
    if not settings.openai.api_key:
        _say("OPENAI_API_KEY not set: messages are stored but the agent cannot reply")

    children: list[subprocess.Popen[bytes]] = [
        subprocess.Popen([sys.executable, "-m", "webhook_gateway"], env=env)
    ]
    _say(f"gateway on http://{env['HOST']}:{env['PORT']} (GET /healthz)")
    if settings.livekit.configured:
        children.append(subprocess.Popen([sys.executable, "-m", "worker", "start"], env=env))
        _say(f"voice worker connecting to {settings.livekit.url}")
    else:
        _say(
            "LiveKit not configured (LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET): "
            "the voice worker is not started; calls use the TwiML loop"
        )

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    status = 0
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        status = next(c.returncode for c in children if c.returncode is not None) or 1
        _say("a process exited; stopping")
    except KeyboardInterrupt:
        _say("stopping")
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
    return status
