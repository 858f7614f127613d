"""A test's own embedded Postgres, which the test may stop and start again without
disturbing the session's server the other tests share."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from shared import migrate
from shared.devdb import _server, start_embedded, stop_embedded


@dataclass
class OwnPostgres:
    data_dir: Path
    dsn: str

    def _handle(self) -> Any:
        return _server((self.data_dir / "pg").resolve())

    def stop(self) -> float:
        """`pg_ctl stop` (fast mode: every connection is cut); when it was down."""
        self._handle().stop()
        return time.monotonic()

    def start(self) -> float:
        """Start it again on the same data directory and socket; when it was up."""
        server = self._handle()
        with server._lock:
            server.ensure_postgres_running()
        if server.get_uri() != self.dsn:
            raise RuntimeError(f"Postgres came back elsewhere: {server.get_uri()} (was {self.dsn})")
        return time.monotonic()

    async def migrate(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            await migrate.apply(conn)
        finally:
            await conn.close()


@contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    """A fresh embedded server under a temporary directory, removed afterwards."""
    # Not pytest's tmp_path: its parents are 0700 and Postgres runs as its own system user.
    data_dir = Path(tempfile.mkdtemp(prefix="wassla-own-pg-"))
    data_dir.chmod(0o755)
    try:
        yield OwnPostgres(data_dir=data_dir, dsn=start_embedded(data_dir))
    finally:
        stop_embedded(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)
