"""`python -m webhook_gateway.sms_worker`: send the SMS replies gateways queued.

Used with SMS_REPLIES=worker, so the gateway's event loop only acknowledges Twilio and the
model client's CPU runs in its own process. Any number of workers may run: each claims
rows from the outbox (sms_outbox.claim_due, SKIP LOCKED), so a reply is sent by one.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable

from shared.chat import TextChat
from shared.db import create_pool
from shared.errors import WasslaError
from shared.recordings import build_store
from shared.settings import Settings
from webhook_gateway.sms_replies import SmsReplier
from webhook_gateway.state import GatewayState
from webhook_gateway.twilio_rest import TwilioRest

logger = logging.getLogger("webhook_gateway.sms_worker")

WORKER_CONCURRENT_REPLIES = 64


async def run(
    settings: Settings,
    *,
    started: Callable[[SmsReplier], None] | None = None,
    handle_signals: bool = True,
    poll_seconds: float = 1.0,
) -> None:
    """Work until SIGTERM/SIGINT (or the replier's `request_stop`, given to `started`)."""
    pool = await create_pool(settings)
    state = GatewayState(
        settings=settings,
        pool=pool,
        recordings=build_store(settings),
        chat=TextChat(settings),
        twilio=TwilioRest(settings),
    )
    # Replies mostly wait on the model; a worker's loop serves nothing else, so it may hold
    # many more at once than a gateway's (which must keep acknowledging Twilio).
    replier = SmsReplier(state, max_concurrent_replies=WORKER_CONCURRENT_REPLIES)
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT) if handle_signals else ()
    for sig in signals:
        loop.add_signal_handler(sig, replier.request_stop)
    logger.info("sms_worker.started")
    try:
        if started is not None:
            started(replier)
        await replier.work(poll_seconds=poll_seconds)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        await state.aclose()  # replies in flight finish first (drain)
        await pool.close()
        logger.info("sms_worker.stopped")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if "--help" in sys.argv[1:] or "-h" in sys.argv[1:]:
        usage = "usage: python -m webhook_gateway.sms_worker  (gateway with SMS_REPLIES=worker)"
        print(usage)  # noqa: T201
        return 0
    settings = Settings()
    try:
        settings.require("twilio_account_sid", "twilio_auth_token")
    except WasslaError as exc:
        print(f"sms_worker: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    asyncio.run(run(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
