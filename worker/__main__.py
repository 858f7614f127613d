"""`python -m worker start|dev|console|connect|download-files`: livekit-agents' own CLI."""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import shutil
import sys
import tempfile
import warnings

# prometheus-client picks its mode when first imported (by livekit.agents, just below). Calls
# run in job processes of their own, so every process of the worker writes its metrics to
# files in one directory, which the main process's scrape adds up (shared/metrics.py); the
# job processes inherit the variable.
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="wassla-worker-metrics-")
    atexit.register(shutil.rmtree, os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)

from livekit.agents import cli
from livekit.agents.cli import cli as livekit_cli

from shared import db
from shared.errors import WasslaError
from shared.logs import configure_logging
from shared.settings import Settings
from worker import providers
from worker.server import build_server, load_settings

logger = logging.getLogger("worker")


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


def _log_in_our_format(settings: Settings) -> None:
    """livekit-agents' CLI sets up its own logging when `start`/`dev` runs the worker (its
    JSON to stdout, or coloured text): let it (it quiets its noisy loggers and sets its
    plugins' levels), then put our handler back in place of its one, so the framework's lines,
    and its job processes' (forwarded to this process), come out like every other process's."""
    framework_setup = livekit_cli.setup_logging  # type: ignore[attr-defined]

    def setup_logging(log_level: str, devmode: bool, console: bool, compact: bool = False) -> None:
        framework_setup(log_level, devmode, console, compact)
        configure_logging(settings, "worker")

    livekit_cli.setup_logging = setup_logging  # type: ignore[attr-defined]


def main() -> None:
    # The forkserver loads the local inference models our settings use (worker/preload.py:
    # the native VAD, the end-of-turn model with WORKER_TURN_DETECTION=model), so the
    # framework's own preload stays off: it would map the end-of-turn weights (about 250 MB)
    # in VAD-only mode too.
    os.environ.setdefault("LIVEKIT_AGENTS_PRELOAD_LOCAL_INFERENCE", "0")
    settings = load_settings()
    if sys.argv[1:2] != ["console"]:  # the console mode's terminal UI shows the log itself
        configure_logging(settings, "worker")
    _log_in_our_format(settings)
    if _runs_a_worker(sys.argv):
        try:
            settings.check_process("worker")
            asyncio.run(_check_schema(settings))
        except WasslaError as exc:
            logger.error("worker.cannot_start", extra={"error": str(exc)})
            sys.exit(2)
        # Which transcription path calls take: OPENAI_STT_STREAMING=false is the fallback for
        # OpenAI-compatible servers without realtime transcription.
        logger.info("worker.stt_mode", extra=providers.stt_mode(settings))
    server = build_server(settings)
    # The framework marks its Python CLI deprecated in favour of its Go CLI; we keep it so
    # a plain `python -m worker start` runs in production images without extra binaries.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        logging.captureWarnings(False)
        cli.run_app(server)


if __name__ == "__main__":
    main()
