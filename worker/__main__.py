"""`python -m worker start|dev|console|connect|download-files`: livekit-agents' own CLI."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import warnings

from livekit.agents import cli

from shared import db
from shared.errors import WasslaError
from shared.settings import Settings
from worker.server import build_server, load_settings


def _runs_a_worker(argv: list[str]) -> bool:
    """`start`/`dev`/`connect` need LiveKit; `--help` and `download-files` do not."""
    return argv[1:2] in (["start"], ["dev"], ["connect"]) and not {"-h", "--help"} & set(argv)


async def _check_schema(settings: Settings) -> None:
    """Refuse to take calls on a database whose migrations are pending or were edited."""
    pool = await db.create_pool(
        settings.changed({"db.pool_min_size": 1, "db.pool_max_size": 1}),
        require_current_schema=True,
    )
    await pool.close()


def main() -> None:
    # Our VAD is the Silero plugin and turns are VAD-based: never preload the framework's
    # local end-of-turn model (hundreds of MB per worker) that we do not use.
    os.environ.setdefault("LIVEKIT_AGENTS_PRELOAD_LOCAL_INFERENCE", "0")
    settings = load_settings()
    if _runs_a_worker(sys.argv):
        try:
            settings.check_process("worker")
            asyncio.run(_check_schema(settings))
        except WasslaError as exc:
            print(f"worker: {exc}", file=sys.stderr)  # noqa: T201
            sys.exit(2)
    server = build_server(settings)
    # The framework marks its Python CLI deprecated in favour of its Go CLI; we keep it so
    # a plain `python -m worker start` runs in production images without extra binaries.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        logging.captureWarnings(False)
        cli.run_app(server)


if __name__ == "__main__":
    main()
