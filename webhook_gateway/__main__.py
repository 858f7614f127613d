"""`python -m webhook_gateway`: serve the gateway on HOST:PORT from settings."""

from __future__ import annotations

import logging
import sys

import uvicorn

from shared.logs import settings_for
from webhook_gateway.app import create_app

logger = logging.getLogger("webhook_gateway")


def main() -> int:
    if "--help" in sys.argv[1:] or "-h" in sys.argv[1:]:
        print("usage: python -m webhook_gateway  (serves on HOST:PORT; see README settings)")  # noqa: T201
        return 0
    settings = settings_for("gateway", logger=logger, event="gateway.cannot_start")
    if settings is None:
        return 2
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        proxy_headers=True,
        forwarded_allow_ips="*",
        # No log config of uvicorn's own: its records go to the root handler, in our format.
        log_config=None,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=20,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
