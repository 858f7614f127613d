from pathlib import Path

import asyncpg
import pytest

from shared import migrate
from shared.errors import SchemaNotCurrent


async def _fresh_db(pg_dsn: str, name: str) -> str:
    admin = await asyncpg.connect(pg_dsn)
    try:
        await admin.execute(f'drop database if exists "{name}"')
        await admin.execute(f'create database "{name}"')
    finally:
        await admin.close()
    return pg_dsn.replace("/postgres?", f"/{name}?")


def _write(directory: Path, name: str, sql: str) -> None:
    (directory / name).write_text(sql, encoding="utf-8")


async def test_real_migrations_apply_once_and_schema_is_current(pg_dsn: str) -> None:
    dsn = await _fresh_db(pg_dsn, "mig_real")
    conn = await asyncpg.connect(dsn)
    try:
        with pytest.raises(SchemaNotCurrent, match="wassla migrate"):
            await migrate.check_current(conn)
        first = await migrate.apply(conn)
        assert first[0] == "0001_init"
        assert await migrate.apply(conn) == []
        await migrate.check_current(conn)
        plans = await conn.fetch("select code, includes_sms, includes_voice from plans")
        by_code = {p["code"]: (p["includes_sms"], p["includes_voice"]) for p in plans}
        assert by_code["trial"] == (False, False)
        assert by_code["starter"] == (True, True)
    finally:
        await conn.close()


async def test_edited_applied_migration_is_refused(pg_dsn: str, tmp_path: Path) -> None:
    dsn = await _fresh_db(pg_dsn, "mig_edit")
    _write(tmp_path, "0001_a.sql", "create table a (id int);")
    conn = await asyncpg.connect(dsn)
    try:
        assert await migrate.apply(conn, tmp_path) == ["0001_a"]
        _write(tmp_path, "0001_a.sql", "create table a (id bigint);")
        with pytest.raises(SchemaNotCurrent, match="edited"):
            await migrate.apply(conn, tmp_path)
        with pytest.raises(SchemaNotCurrent, match="edited"):
            await migrate.check_current(conn, tmp_path)
    finally:
        await conn.close()


async def test_concurrent_runners_serialise_on_the_advisory_lock(
    pg_dsn: str, tmp_path: Path
) -> None:
    import asyncio

    dsn = await _fresh_db(pg_dsn, "mig_race")
    _write(tmp_path, "0001_a.sql", "create table a (id int); select pg_sleep(0.3);")
    _write(tmp_path, "0002_b.sql", "create table b (id int);")
    conns = [await asyncpg.connect(dsn) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate.apply(c, tmp_path) for c in conns))
        applied = sorted(v for r in results for v in r)
        assert applied == ["0001_a", "0002_b"]  # each applied by exactly one runner
        count = await conns[0].fetchval("select count(*) from schema_migrations")
        assert count == 2
    finally:
        for c in conns:
            await c.close()


async def test_unknown_applied_version_is_refused(pg_dsn: str, tmp_path: Path) -> None:
    dsn = await _fresh_db(pg_dsn, "mig_newer")
    _write(tmp_path, "0001_a.sql", "select 1;")
    _write(tmp_path, "0002_b.sql", "select 2;")
    conn = await asyncpg.connect(dsn)
    try:
        await migrate.apply(conn, tmp_path)
        (tmp_path / "0002_b.sql").unlink()
        with pytest.raises(SchemaNotCurrent, match="does not know"):
            await migrate.check_current(conn, tmp_path)
    finally:
        await conn.close()
