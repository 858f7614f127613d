"""Numbered `.sql` migrations with checksums, applied under one advisory lock."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from shared.errors import SchemaNotCurrent
from shared.pg import Connection

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant shared by every runner: two processes migrating at once serialise on it.
_LOCK_KEY = 0x5A55_1A_01

_CREATE_TABLE = """
create table if not exists schema_migrations (
    version text primary key,
    checksum text not null,
    applied_at timestamptz not null default now()
)
"""


@dataclass(frozen=True)
class Migration:
    version: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files in order; names must look like `0001_what.sql`."""
    found = []
    for path in sorted(directory.glob("*.sql")):
        prefix = path.name.split("_", 1)[0]
        if not prefix.isdigit():
            raise SchemaNotCurrent(f"migration file name must start with a number: {path.name}")
        found.append(Migration(version=path.stem, sql=path.read_text(encoding="utf-8")))
    return found


async def _applied(conn: Connection) -> dict[str, str]:
    exists = await conn.fetchval("select to_regclass('schema_migrations') is not null")
    if not exists:
        return {}
    rows = await conn.fetch("select version, checksum from schema_migrations")
    return {r["version"]: r["checksum"] for r in rows}


def _verify_unchanged(applied: dict[str, str], migrations: list[Migration]) -> None:
    by_version = {m.version: m for m in migrations}
    for version, checksum in applied.items():
        migration = by_version.get(version)
        if migration is None:
            raise SchemaNotCurrent(
                f"database has migration {version} that this code does not know; "
                "deploy the newer code"
            )
        if migration.checksum != checksum:
            raise SchemaNotCurrent(
                f"applied migration {version} was edited after it ran (checksum differs); "
                "add a new migration instead of changing an applied one"
            )


async def apply(conn: Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations; return the versions applied now."""
    migrations = load_migrations(directory)
    done: list[str] = []
    async with conn.transaction():
        await conn.execute("select pg_advisory_xact_lock($1)", _LOCK_KEY)
        await conn.execute(_CREATE_TABLE)
        applied = await _applied(conn)
        _verify_unchanged(applied, migrations)
        for migration in migrations:
            if migration.version in applied:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "insert into schema_migrations (version, checksum) values ($1, $2)",
                migration.version,
                migration.checksum,
            )
            done.append(migration.version)
    return done


async def check_current(conn: Connection, directory: Path = MIGRATIONS_DIR) -> None:
    """Raise SchemaNotCurrent unless every migration is applied, unedited."""
    migrations = load_migrations(directory)
    applied = await _applied(conn)
    _verify_unchanged(applied, migrations)
    pending = [m.version for m in migrations if m.version not in applied]
    if pending:
        raise SchemaNotCurrent(
            "database schema is not current; run `wassla migrate` (pending: "
            + ", ".join(pending)
            + ")"
        )
