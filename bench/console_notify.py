"""Bench what the console's NOTIFY triggers (migration 0005) cost the SMS intake's batched
store: `sms.receive_many` on batches of texts from distinct contacts (each a new conversation:
the most notifications a batch can send), A/B in one process on one server: rounds alternate
the triggers off and on (production).

    .venv/bin/python bench/console_notify.py [--rounds 6] [--batches 50] [--batch-size 32]
        [--listen]

Embedded Postgres in a temp data dir (or DATABASE_URL: its tables are NOT cleaned, use a
scratch database). `--listen` keeps a LISTEN connection open, as a gateway with a console
tab open does. Prints the batch store's p50/p95 ms and texts/s for each.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

from shared import migrate, sms, workspaces
from shared.channels import connect_channel
from shared.devdb import start_embedded, stop_embedded
from shared.models import BillingMode
from shared.pg import Connection

OUR_NUMBER = "+15551230000"
_TRIGGERS = [
    ("messages", "console_messages_inserted"),
    ("messages", "console_message_changed"),
    ("conversations", "console_conversations_inserted"),
    ("conversations", "console_conversation_changed"),
    ("charges", "console_charge_inserted"),
    ("workspaces", "console_workspace_changed"),
]


async def _store_batches(
    conn: Connection, number: str, batches: int, batch_size: int, seed: int
) -> list[float]:
    timings = []
    for b in range(batches):
        texts = [
            sms.InboundSms(
                f"SM{uuid.uuid4().hex}",
                f"+1555{(seed + b * batch_size + i) % 10**7:07d}",
                number,
                "Are you open today?",
            )  # fmt: skip
            for i in range(batch_size)
        ]
        start = time.perf_counter()
        await sms.receive_many(conn, texts, can_send=True, lease_seconds=None)
        timings.append((time.perf_counter() - start) * 1000)
    return timings


async def _set_triggers(conn: Connection, enabled: bool) -> None:
    state = "enable" if enabled else "disable"
    for table, trigger in _TRIGGERS:
        await conn.execute(f"alter table {table} {state} trigger {trigger}")


def _summary(label: str, timings: list[float], batch_size: int) -> str:
    timings = sorted(timings)
    p50 = statistics.median(timings)
    p95 = timings[int(len(timings) * 0.95)]
    rate = batch_size * len(timings) / (sum(timings) / 1000)
    return (
        f"{label}: batch of {batch_size} p50 {p50:.2f} ms, p95 {p95:.2f} ms,"
        f" {rate:,.0f} texts/s over {len(timings)} batches"
    )


async def run(dsn: str, args: argparse.Namespace) -> None:
    admin = await asyncpg.connect(dsn)
    await migrate.apply(admin)
    workspace = await workspaces.create_workspace(
        admin, name="Bench", plan="starter", billing_mode=BillingMode.LIVE,
        credit_balance_minor=10**9,
    )  # fmt: skip
    number = f"+1555{uuid.uuid4().int % 10**7:07d}"
    await connect_channel(admin, workspace.id, "sms", number, None)
    listener = None
    if args.listen:  # a gateway with a console tab open
        listener = await asyncpg.connect(dsn)
        await listener.add_listener("console_events", lambda *_: None)
    pool = await asyncpg.create_pool(
        dsn, min_size=1, max_size=1, server_settings={"plan_cache_mode": "force_generic_plan"}
    )
    results: dict[bool, list[float]] = {True: [], False: []}
    seed = 0
    try:
        async with pool.acquire() as conn:
            await _store_batches(conn, number, 10, args.batch_size, seed=10**6)  # warm up
            for round_ in range(args.rounds):
                # Alternate which goes first, so drift on a shared machine hits both alike.
                order = (False, True) if round_ % 2 == 0 else (True, False)
                for enabled in order:
                    await _set_triggers(admin, enabled)
                    seed += args.batches * args.batch_size
                    results[enabled] += await _store_batches(
                        conn, number, args.batches, args.batch_size, seed
                    )
    finally:
        await pool.close()
        if listener is not None:
            await listener.close()
        await _set_triggers(admin, True)
        await admin.close()
    suffix = " (+ a listener)" if args.listen else ""
    print(_summary("without triggers" + suffix, results[False], args.batch_size))  # noqa: T201
    print(_summary("with triggers" + suffix, results[True], args.batch_size))  # noqa: T201


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=50, help="per mode and round")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--listen", action="store_true")
    args = parser.parse_args()
    if os.environ.get("DATABASE_URL"):
        asyncio.run(run(os.environ["DATABASE_URL"], args))
        return
    data_dir = Path(tempfile.mkdtemp(prefix="wassla-bench-"))
    data_dir.chmod(0o755)
    try:
        asyncio.run(run(start_embedded(data_dir), args))
    finally:
        stop_embedded(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
