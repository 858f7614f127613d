"""`wassla`: the ops CLI, for people and scripts (`--json` for machine-readable output)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

import asyncpg

from shared import (
    agents,
    billing,
    channels,
    conversations,
    inbox,
    migrate,
    recordings,
    workspaces,
)
from shared.agents import AgentFields
from shared.db import create_pool, resolve_dsn
from shared.e164 import calling_code_for
from shared.errors import WasslaError
from shared.models import BillingMode, Modality, Role
from shared.pg import Connection
from shared.providers.recording_store import build_store
from shared.settings import Settings

Handler = Callable[[Connection, argparse.Namespace], Awaitable[Any]]


class CliError(Exception):
    """A bad argument: printed as one line, exit status 2."""


def _uuid(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an id: {value!r}") from None


def _minor_units(value: str) -> int:
    """`25`, `25.50` (major units, two decimals) -> minor units (2550)."""
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not an amount: {value!r}") from None
    minor = amount * 100
    if minor != minor.to_integral_value():
        raise argparse.ArgumentTypeError(f"at most two decimals: {value!r}")
    return int(minor)


def _bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "yes", "1", "on"):
        return True
    if lowered in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false: {value!r}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "as_dict"):
        return _jsonable(value.as_dict())
    return value


def _print(result: Any, as_json: bool) -> None:
    data = _jsonable(result)
    if as_json:
        print(json.dumps(data, ensure_ascii=False, indent=2))  # noqa: T201
        return
    rows = data if isinstance(data, list) else [data]
    for row in rows:
        if isinstance(row, dict):
            print("  ".join(f"{k}={v}" for k, v in row.items() if v not in (None, "")))  # noqa: T201
        elif row is not None:
            print(row)  # noqa: T201


# --- handlers -------------------------------------------------------------------------------


async def _workspace_create(conn: Connection, a: argparse.Namespace) -> Any:
    return await workspaces.create_workspace(
        conn,
        name=a.name,
        plan=a.plan,
        billing_mode=BillingMode(a.billing_mode),
        credit_balance_minor=a.credits,
    )


async def _workspace_set(conn: Connection, a: argparse.Namespace) -> Any:
    return await workspaces.update_workspace(
        conn,
        a.id,
        name=a.name,
        plan=a.plan,
        billing_mode=BillingMode(a.billing_mode) if a.billing_mode else None,
        add_credits_minor=a.add_credits,
        enable_calling_codes=[calling_code_for(r) for r in a.enable_region],
        disable_calling_codes=[calling_code_for(r) for r in a.disable_region],
    )


async def _workspace_show(conn: Connection, a: argparse.Namespace) -> Any:
    return await workspaces.get_workspace(conn, a.id)


async def _workspace_list(conn: Connection, _: argparse.Namespace) -> Any:
    return await workspaces.list_workspaces(conn)


async def _member_add(conn: Connection, a: argparse.Namespace) -> Any:
    await workspaces.add_member(conn, a.workspace, a.user, Role(a.role))
    return {"workspace_id": a.workspace, "user_id": a.user, "role": a.role}


def _agent_fields(a: argparse.Namespace) -> AgentFields:
    active = None
    if getattr(a, "inactive", False):
        active = False
    elif getattr(a, "active", None) is not None:
        active = a.active
    return AgentFields(
        name=a.name,
        instructions=a.instructions,
        greeting=a.greeting,
        modality=Modality(a.modality) if a.modality else None,
        language=a.language,
        voice=a.voice,
        chat_model=a.chat_model,
        active=active,
        max_call_seconds=a.max_call_seconds,
        handoff_number=a.handoff_number,
        handoff_digit=a.handoff_digit,
        handoff_mode=a.handoff_mode,
        idle_prompt_seconds=a.idle_prompt_seconds,
        idle_goodbye_seconds=a.idle_goodbye_seconds,
    )


async def _agent_create(conn: Connection, a: argparse.Namespace) -> Any:
    await workspaces.get_workspace(conn, a.workspace)
    return await agents.create_agent(conn, a.workspace, _agent_fields(a))


async def _agent_set(conn: Connection, a: argparse.Namespace) -> Any:
    return await agents.update_agent(conn, a.id, _agent_fields(a))


async def _agent_list(conn: Connection, a: argparse.Namespace) -> Any:
    return await agents.list_agents(conn, a.workspace)


async def _channel_view(conn: Connection, channel: Any) -> dict[str, Any]:
    view: dict[str, Any] = channel.as_dict()
    view["agent_id"] = await channels.bound_agent_id(conn, channel.id)
    return view


async def _channel_connect(conn: Connection, a: argparse.Namespace) -> Any:
    channel = await channels.connect_channel(conn, a.workspace, a.kind, a.number, a.agent)
    return await _channel_view(conn, channel)


async def _channel_update(conn: Connection, a: argparse.Namespace) -> Any:
    if a.number is None and a.agent is None and not a.unbind_agent:
        raise CliError("nothing to change: give --number, --agent or --unbind-agent")
    channel = await channels.update_channel(
        conn, a.id, phone_number=a.number, agent_id=a.agent, unbind_agent=a.unbind_agent
    )
    return await _channel_view(conn, channel)


async def _channel_disconnect(conn: Connection, a: argparse.Namespace) -> Any:
    return await _channel_view(conn, await channels.disconnect_channel(conn, a.id))


async def _channel_list(conn: Connection, a: argparse.Namespace) -> Any:
    return [await _channel_view(conn, c) for c in await channels.list_channels(conn, a.workspace)]


async def _conversations(conn: Connection, a: argparse.Namespace) -> Any:
    return await conversations.list_conversations(conn, a.workspace)


async def _conversation(conn: Connection, a: argparse.Namespace) -> Any:
    conversation = await conversations.get_conversation(conn, a.id)
    messages = await conversations.history(conn, a.id, limit=10_000)
    conversation["messages"] = [
        {k: v for k, v in m.__dict__.items() if k != "created"} for m in messages
    ]
    # Each recording with a short-lived link: presigned on S3, the gateway's signed link locally.
    settings: Settings = a.settings
    stored = await recordings.conversation_recordings(conn, a.id)
    links: list[dict[str, Any]] = []
    if stored:  # only then the store: a conversation without recordings needs no S3 secrets
        store = build_store(settings)
        links = [
            {
                "recording_id": r.id,
                "call_id": r.call_id,
                "duration_seconds": r.duration_seconds,
                "size_bytes": r.size_bytes,
                "url": await store.presign_get(r.bucket_key, settings.recordings.url_ttl_seconds),
            }
            for r in stored
        ]
    if a.json:
        return {**conversation, "recordings": links}
    return [conversation, conversation.pop("messages"), *links]


async def _charges(conn: Connection, a: argparse.Namespace) -> Any:
    workspace = await workspaces.get_workspace(conn, a.workspace)
    charges = await billing.list_charges(conn, a.workspace)
    if a.json:
        return {"charges": charges, "credit_balance_minor": workspace.credit_balance_minor}
    return [*charges, {"credit_balance_minor": workspace.credit_balance_minor}]


async def _console_link(conn: Connection, a: argparse.Namespace) -> Any:
    """A short-lived sign-in link to the console for a member (the token is the link's only
    secret: send it to that person alone)."""
    from webhook_gateway.auth import mint_user_token

    settings: Settings = a.settings
    settings.require("jwt_secret")
    assert settings.jwt_secret is not None
    if not 1 <= a.minutes <= 24 * 60:
        raise CliError("--minutes must be between 1 and 1440")
    member_of = await inbox.member_workspaces(conn, a.user)
    if not member_of:
        raise CliError(
            f"{a.user} is a member of no workspace; add them first with wassla member add"
        )
    token = mint_user_token(a.user, settings.jwt_secret, ttl_seconds=a.minutes * 60)
    link = f"{settings.public_base_url.rstrip('/')}/console/login?token={token}"
    if a.json:
        return {"link": link, "expires_in_seconds": a.minutes * 60, "user": a.user}
    return [link]


# --- parser ---------------------------------------------------------------------------------


def _agent_options(p: argparse.ArgumentParser, *, creating: bool) -> None:
    p.add_argument("--name", required=creating)
    p.add_argument("--instructions", required=creating)
    p.add_argument("--greeting")
    p.add_argument("--modality", choices=[m.value for m in Modality])
    p.add_argument("--language", help="BCP-47 tag, e.g. en-US, ar-SA")
    p.add_argument(
        "--voice",
        help="an AI voice (alloy, ash, coral, nova, onyx, ...) or a phone voice of the agent's"
        " language (Polly.Joanna-Neural, Google.en-US-Neural2-F, ...); '' for the default",
    )
    p.add_argument("--chat-model")
    p.add_argument("--max-call-seconds", type=int)
    p.add_argument("--handoff-number", help="E.164 number for human hand-off")
    p.add_argument(
        "--handoff-digit",
        help="keypad key that hands the caller to a person (0-9, * or #; '' for none)",
    )
    p.add_argument(
        "--handoff-mode",
        choices=["cold", "warm"],
        help="cold: transfer at once; warm: brief the person first, who may decline",
    )
    p.add_argument(
        "--idle-prompt-seconds", type=int, help="caller silence before 'are you still there?'"
    )
    p.add_argument(
        "--idle-goodbye-seconds", type=int, help="further silence before goodbye and hang-up"
    )
    if creating:
        p.add_argument("--inactive", action="store_true")
    else:
        p.add_argument("--active", type=_bool)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise CliError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="wassla", description="Operate wassla-voice.")
    parser.add_argument("--json", action="store_true", help="print JSON")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("migrate", help="apply pending database migrations")
    dev = sub.add_parser("dev", help="run everything locally with embedded defaults")
    dev.add_argument("--no-seed", action="store_true", help="do not create demo data")

    ws = sub.add_parser("workspace").add_subparsers(dest="action", required=True)
    p = ws.add_parser("create")
    p.add_argument("--name", required=True)
    p.add_argument("--plan", required=True)
    p.add_argument("--billing-mode", choices=[m.value for m in BillingMode], default="infra_only")
    p.add_argument("--credits", type=_minor_units, default=0, help="major units, e.g. 25.00")
    p.set_defaults(handler=_workspace_create)
    p = ws.add_parser("set")
    p.add_argument("id", type=_uuid)
    p.add_argument("--name")
    p.add_argument("--plan")
    p.add_argument("--billing-mode", choices=[m.value for m in BillingMode])
    p.add_argument("--add-credits", type=_minor_units, help="major units; negative to remove")
    p.add_argument("--enable-region", action="append", default=[], help="EG or 20")
    p.add_argument("--disable-region", action="append", default=[])
    p.set_defaults(handler=_workspace_set)
    p = ws.add_parser("show")
    p.add_argument("id", type=_uuid)
    p.set_defaults(handler=_workspace_show)
    ws.add_parser("list").set_defaults(handler=_workspace_list)

    member = sub.add_parser("member").add_subparsers(dest="action", required=True)
    p = member.add_parser("add")
    p.add_argument("--workspace", type=_uuid, required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--role", choices=[r.value for r in Role], required=True)
    p.set_defaults(handler=_member_add)

    agent = sub.add_parser("agent").add_subparsers(dest="action", required=True)
    p = agent.add_parser("create")
    p.add_argument("--workspace", type=_uuid, required=True)
    _agent_options(p, creating=True)
    p.set_defaults(handler=_agent_create)
    p = agent.add_parser("set")
    p.add_argument("id", type=_uuid)
    _agent_options(p, creating=False)
    p.set_defaults(handler=_agent_set)
    p = agent.add_parser("list")
    p.add_argument("--workspace", type=_uuid, required=True)
    p.set_defaults(handler=_agent_list)

    channel = sub.add_parser("channel").add_subparsers(dest="action", required=True)
    p = channel.add_parser("connect")
    p.add_argument("--workspace", type=_uuid, required=True)
    p.add_argument("--kind", choices=["sms", "voice"], required=True)
    p.add_argument("--number", required=True)
    p.add_argument("--agent", type=_uuid)
    p.set_defaults(handler=_channel_connect)
    p = channel.add_parser("update")
    p.add_argument("id", type=_uuid)
    p.add_argument("--number")
    p.add_argument("--agent", type=_uuid)
    p.add_argument("--unbind-agent", action="store_true")
    p.set_defaults(handler=_channel_update)
    p = channel.add_parser("disconnect")
    p.add_argument("id", type=_uuid)
    p.set_defaults(handler=_channel_disconnect)
    p = channel.add_parser("list")
    p.add_argument("--workspace", type=_uuid, required=True)
    p.set_defaults(handler=_channel_list)

    p = sub.add_parser("conversations")
    p.add_argument("--workspace", type=_uuid, required=True)
    p.set_defaults(handler=_conversations)
    p = sub.add_parser("conversation")
    p.add_argument("id", type=_uuid)
    p.set_defaults(handler=_conversation)
    p = sub.add_parser("charges")
    p.add_argument("--workspace", type=_uuid, required=True)
    p.set_defaults(handler=_charges)
    p = sub.add_parser("console-link", help="print a short-lived sign-in link to the console")
    p.add_argument("--user", required=True, help="the member's user id (their token's sub)")
    p.add_argument("--minutes", type=int, default=15, help="how long the link signs in (15)")
    p.set_defaults(handler=_console_link)

    livekit = sub.add_parser("livekit").add_subparsers(dest="action", required=True)
    livekit.add_parser(
        "setup",
        help="create or update the inbound SIP trunk (all connected voice numbers),"
        " the dispatch rule that sends each caller to the agent, and the outbound trunk"
        " warm hand-offs dial through (when LIVEKIT_SIP_OUTBOUND_ADDRESS is set)",
    )
    return parser


async def _run_livekit_setup(settings: Settings) -> dict[str, Any]:
    from shared.providers.livekit_sip import sync_inbound_sip, sync_outbound_sip

    settings.check_process("livekit_setup")
    pool = await create_pool(settings)
    try:
        async with pool.acquire() as conn:
            numbers = await channels.voice_numbers(conn)
    finally:
        await pool.close()
    setup = await sync_inbound_sip(settings, numbers)
    outbound = await sync_outbound_sip(settings, numbers)
    return {
        "trunk_id": setup.trunk_id,
        "dispatch_rule_id": setup.dispatch_rule_id,
        "numbers": setup.numbers,
        "trunk": "created" if setup.trunk_created else "updated",
        "dispatch_rule": "created" if setup.rule_created else "updated",
        # Warm hand-offs dial through it; without an address they fall back to the agent.
        "outbound_trunk_id": outbound.trunk_id if outbound else None,
        "outbound_trunk": (
            "not configured" if outbound is None else "created" if outbound.created else "updated"
        ),
        "outbound_address": outbound.address if outbound else None,
        "outbound_numbers": outbound.numbers if outbound else None,
    }


async def _run_migrate(settings: Settings) -> list[str]:
    conn = await asyncpg.connect(await resolve_dsn(settings))
    try:
        return await migrate.apply(conn)
    finally:
        await conn.close()


async def _run_handler(settings: Settings, args: argparse.Namespace) -> Any:
    args.settings = settings  # for handlers that reach a provider (the recordings store)
    pool = await create_pool(settings)
    try:
        async with pool.acquire() as conn:
            return await args.handler(conn, args)
    finally:
        await pool.close()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        settings = Settings()
        settings.check_process("cli")
        if args.command == "dev":
            from wassla.dev import run_dev

            return run_dev(settings, seed=not args.no_seed)
        if args.command == "migrate":
            applied = asyncio.run(_run_migrate(settings))
            _print(
                {"applied": applied} if args.json else applied or ["schema is current"], args.json
            )
            return 0
        if args.command == "livekit":
            _print(asyncio.run(_run_livekit_setup(settings)), args.json)
            return 0
        _print(asyncio.run(_run_handler(settings, args)), args.json)
        return 0
    except (CliError, WasslaError, argparse.ArgumentTypeError) as exc:
        print(f"wassla: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"wassla: database error: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
