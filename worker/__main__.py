"""`python -m worker start|dev|console|connect|download-files`: livekit-agents' own CLI."""

from __future__ import annotations

import logging
import os
import sys
import warnings

from livekit.agents import cli

from worker.server import build_server, load_settings


def _runs_a_worker(argv: list[str]) -> bool:
    """`start`/`dev`/`connect` need LiveKit; `--help` and `download-files` do not."""
    return argv[1:2] in (["start"], ["dev"], ["connect"]) and not {"-h", "--help"} & set(argv)


def main() -> None:
    # Our VAD is the Silero plugin and turns are VAD-based: never preload the framework's
    # local end-of-turn model (~244 MB per worker) that we do not use.
    os.environ.setdefault("LIVEKIT_AGENTS_PRELOAD_LOCAL_INFERENCE", "0")
    settings = load_settings()
    if _runs_a_worker(sys.argv):
        settings.require("livekit_url", "livekit_api_key", "livekit_api_secret")
    server = build_server(settings)
    # The framework marks its Python CLI deprecated in favour of its Go CLI; we keep it so
    # a plain `python -m worker start` runs in production images without extra binaries.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        logging.captureWarnings(False)
        cli.run_app(server)


if __name__ == "__main__":
    main()
