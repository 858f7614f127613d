"""The worker refuses to take calls on a database that is not fully migrated."""

from __future__ import annotations

import asyncio
import os
import sys

import asyncpg


async def test_worker_start_refuses_an_unmigrated_database(pg_dsn: str) -> None:
    admin = await asyncpg.connect(pg_dsn)
    await admin.execute("drop database if exists worker_unmigrated")
    await admin.execute("create database worker_unmigrated")
    await admin.close()
    env = {
        **os.environ,
        "DATABASE_URL": pg_dsn.replace("/postgres?", "/worker_unmigrated?"),
        # Never reached: the schema check comes before connecting to LiveKit.
        "LIVEKIT_URL": "ws://127.0.0.1:9",
        "LIVEKIT_API_KEY": "k",
        "LIVEKIT_API_SECRET": "s" * 32,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker", "start",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    stderr = err.decode()
    assert proc.returncode == 2, stderr[-2000:]
    assert "wassla migrate" in stderr
    assert "Traceback" not in stderr
