"""`python -m webhook_gateway`: serve the gateway on HOST:PORT from settings."""

from __future__ import annotations

import logging
import sys

import uvicorn

from shared.errors import WasslaError
from shared.settings import Settings
from webhook_gateway.app import create_app


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if "--help" in sys.argv[1:] or "-h" in sys.argv[1:]:
        print("usage: python -m webhook_gateway  (serves on HOST:PORT; see README settings)")  # noqa: T201
        return 0
    settings = Settings()
    try:
        settings.check_process("gateway")
    except WasslaError as exc:
        print(f"webhook_gateway: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        proxy_headers=True,
        forwarded_allow_ips="*",
        log_level="info",
        timeout_graceful_shutdown=20,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
