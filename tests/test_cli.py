"""The `wassla` console script, run as a person or a script would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import pytest

from shared.providers.recording_store import S3RecordingStore, build_store
from shared.settings import Settings
from tests.conftest import JWT_TEST_SECRET
from tests.support.gateway import running_gateway

AUDIO = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4


def wassla(
    pg_dsn: str, data_dir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "DATABASE_URL": pg_dsn, "WASSLA_DATA_DIR": str(data_dir)}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "wassla.cli", *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ok_json(pg_dsn: str, data_dir: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    result = wassla(pg_dsn, data_dir, "--json", *args, env=env)
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
    from tests.support import factories

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


@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_cli_conversation_links_serve_its_recordings(
    pool: asyncpg.Pool, pg_dsn: str, data_dir: Path, settings: Settings, s3_endpoint: str,
    backend: str,
) -> None:  # fmt: skip
    """Each recording gets a short-lived link that serves its bytes: the gateway's signed link
    for the local store, a presigned URL for the bucket."""
    from shared import conversations, recordings
    from tests.support import factories

    env = {"PUBLIC_BASE_URL": settings.public_base_url, "WASSLA_JWT_SECRET": JWT_TEST_SECRET,
           "RECORDINGS_BACKEND": backend}  # fmt: skip
    if backend == "s3":
        settings = settings.changed({
            "recordings.backend": "s3", "recordings.bucket": f"rec-{uuid4().hex[:8]}",
            "s3.endpoint_url": s3_endpoint, "s3.access_key_id": "testing",
            "s3.secret_access_key": "testing",
        })  # fmt: skip
        env |= {"RECORDINGS_BUCKET": settings.recordings.bucket, "S3_ENDPOINT_URL": s3_endpoint,
                "S3_ACCESS_KEY_ID": "testing", "S3_SECRET_ACCESS_KEY": "testing"}  # fmt: skip
    store = build_store(settings)
    if isinstance(store, S3RecordingStore):
        await store.ensure_bucket()
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn)
        ch = await factories.channel(conn, ws.id, kind="voice")
        conv = await conversations.open_conversation(
            conn, workspace_id=ws.id, kind="voice", channel_id=ch.id,
            contact_number="+14155550100", agent_id=None,
        )  # fmt: skip
        recording_id = await recordings.save_recording(
            conn, store, workspace_id=ws.id, conversation_id=conv, call_id=None,
            provider_id="RE" + uuid4().hex, data=AUDIO, content_type="audio/wav",
            extension="wav", duration_seconds=3,
        )  # fmt: skip

    shown = ok_json(pg_dsn, data_dir, "conversation", str(conv), env=env)
    [link] = shown["recordings"]
    assert link["recording_id"] == str(recording_id) and link["duration_seconds"] == 3
    human = wassla(pg_dsn, data_dir, "conversation", str(conv), env=env)
    assert human.returncode == 0, human.stderr
    assert f"recording_id={recording_id}" in human.stdout and " url=http" in human.stdout

    if backend == "s3":
        async with httpx.AsyncClient() as client:
            response = await client.get(link["url"])
        assert response.status_code == 200 and response.content == AUDIO
        return
    # The local store's link is the gateway's recording route: fetch it from the real app.
    assert link["url"].startswith(f"{settings.public_base_url}/recordings/")
    async with running_gateway(settings) as (_, client):
        response = await client.get(link["url"])
        assert response.status_code == 200 and response.content == AUDIO
        assert response.headers["content-type"] == "audio/wav"
        tampered = link["url"].replace("signature=", "signature=0")
        assert (await client.get(tampered)).status_code == 403
