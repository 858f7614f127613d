"""The `wassla` console script, run as a person or a script would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg


def wassla(pg_dsn: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": pg_dsn, "WASSLA_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "wassla.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ok_json(pg_dsn: str, data_dir: Path, *args: str) -> Any:
    result = wassla(pg_dsn, data_dir, "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def test_cli_creates_workspace_agent_and_channel(
    pool: asyncpg.Pool, pg_dsn: str, data_dir: Path
) -> None:
    assert wassla(pg_dsn, data_dir, "migrate").returncode == 0
    ws = ok_json(
        pg_dsn, data_dir, "workspace", "create", "--name", "Acme", "--plan", "starter",
        "--billing-mode", "live", "--credits", "25.50",
    )  # fmt: skip
    assert ws["credit_balance_minor"] == 2550 and ws["billing_mode"] == "live"
    agent = ok_json(
        pg_dsn, data_dir, "agent", "create", "--workspace", ws["id"], "--name", "Sara",
        "--instructions", "Help callers.", "--greeting", "مرحبا", "--language", "ar-SA",
        "--modality", "voice", "--max-call-seconds", "300", "--handoff-number", "+966 50 123 4567",
    )  # fmt: skip
    assert agent["handoff_number"] == "+966501234567" and agent["greeting"] == "مرحبا"
    channel = ok_json(
        pg_dsn, data_dir, "channel", "connect", "--workspace", ws["id"], "--kind", "voice",
        "--number", "+1 (555) 123-4567", "--agent", agent["id"],
    )  # fmt: skip
    assert channel["phone_number"] == "+15551234567" and channel["agent_id"] == agent["id"]
    listed = ok_json(pg_dsn, data_dir, "channel", "list", "--workspace", ws["id"])
    assert [c["id"] for c in listed] == [channel["id"]]
    ok_json(pg_dsn, data_dir, "member", "add", "--workspace", ws["id"], "--user", "u1",
            "--role", "admin")  # fmt: skip
    changed = ok_json(pg_dsn, data_dir, "workspace", "set", ws["id"], "--enable-region", "EG",
                      "--add-credits", "-0.50")  # fmt: skip
    assert changed["enabled_calling_codes"] == [20] and changed["credit_balance_minor"] == 2500
    charges = ok_json(pg_dsn, data_dir, "charges", "--workspace", ws["id"])
    assert charges == {"charges": [], "credit_balance_minor": 2500}
    disconnected = ok_json(pg_dsn, data_dir, "channel", "disconnect", channel["id"])
    assert disconnected["active"] is False
    human = wassla(pg_dsn, data_dir, "agent", "list", "--workspace", ws["id"])
    assert human.returncode == 0 and "name=Sara" in human.stdout


async def test_cli_bad_arguments_exit_nonzero_with_one_line(
    pool: asyncpg.Pool, pg_dsn: str, data_dir: Path
) -> None:
    cases = [
        ("workspace", "create", "--name", "X", "--plan", "gold"),
        ("workspace", "create", "--name", "X", "--plan", "starter", "--credits", "abc"),
        ("agent", "create", "--workspace", "not-an-id", "--name", "a", "--instructions", "b"),
        ("channel", "connect", "--workspace", "00000000-0000-0000-0000-000000000000",
         "--kind", "sms", "--number", "+15551234567"),
        ("channel", "connect", "--workspace", "00000000-0000-0000-0000-000000000000",
         "--kind", "sms", "--number", "5551234567"),
        ("bogus",),
    ]  # fmt: skip
    for args in cases:
        result = wassla(pg_dsn, data_dir, *args)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("wassla"), (args, result.stderr)
        assert "Traceback" not in result.stderr


async def test_cli_conversation_prints_messages_in_order(
    pool: asyncpg.Pool, pg_dsn: str, data_dir: Path
) -> None:
    from shared import conversations
    from tests import factories

    async with pool.acquire() as conn:
        ws = await factories.workspace(conn)
        ch = await factories.channel(conn, ws.id)
        conv = await conversations.open_conversation(
            conn, workspace_id=ws.id, kind="sms", channel_id=ch.id,
            contact_number="+14155550100", agent_id=None,
        )  # fmt: skip
        for i, role in enumerate(["user", "assistant", "user"]):
            await conversations.add_message(
                conn, conv, direction="inbound" if role == "user" else "outbound", role=role,  # type: ignore[arg-type]
                body=f"m{i}",
            )  # fmt: skip
    shown = ok_json(pg_dsn, data_dir, "conversation", str(conv))
    assert [m["body"] for m in shown["messages"]] == ["m0", "m1", "m2"]
    listed = ok_json(pg_dsn, data_dir, "conversations", "--workspace", str(ws.id))
    assert listed[0]["message_count"] == 3
