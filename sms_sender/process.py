"""`python -m sms_sender`: send the SMS replies gateways queued.

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

from shared import metrics
from shared.db import Pool, database_answers
from shared.logs import settings_for
from shared.services import Services
from shared.settings import Settings
from shared.sms_replies import SmsReplier

logger = logging.getLogger("sms_sender")

WORKER_CONCURRENT_REPLIES = 64


_HEALTH_TIMEOUT_SECONDS = 2.0


async def serve_health(replier: SmsReplier, pool: Pool, port: int) -> asyncio.Server:
    """`GET /` answers 200 while the worker listens for queued replies and its database
    answers, else 503: the sms group's Fly check, which a bluegreen deploy waits for.
    `GET /metrics` answers Prometheus (shared/metrics.py)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_HEALTH_TIMEOUT_SECONDS):
                head = await reader.readuntil(b"\r\n\r\n")  # the request line and headers
            if metrics.is_metrics_request(head):
                writer.write(metrics.respond(head))
                await writer.drain()
                return
            ok = replier.listening and await database_answers(pool)
            status, body = (b"200 OK", b"ok\n") if ok else (b"503 Service Unavailable", b"no\n")
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain\r\nContent-Length: "
                + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
            )  # fmt: skip
            await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a prober that hung up or sent nonsense
        finally:
            writer.close()

    # Every interface, IPv6 too: Fly's scrape of /metrics may come over its IPv6 network.
    return await asyncio.start_server(answer, None, port, limit=8192)


async def run(
    settings: Settings,
    *,
    started: Callable[[SmsReplier], None] | None = None,
    handle_signals: bool = True,
    poll_seconds: float = 1.0,
) -> None:
    """Work until SIGTERM/SIGINT (or the replier's `request_stop`, given to `started`)."""
    services = await Services.open(settings)
    pool = services.pool
    # Replies mostly wait on the model; a worker's loop serves nothing else, so it may hold
    # many more at once than a gateway's (which must keep acknowledging Twilio).
    replier = SmsReplier(services, max_concurrent_replies=WORKER_CONCURRENT_REPLIES)
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT) if handle_signals else ()
    for sig in signals:
        loop.add_signal_handler(sig, replier.request_stop)
    health = None
    if settings.sms.worker_health_port is not None:
        health = await serve_health(replier, pool, settings.sms.worker_health_port)
    logger.info("sms_worker.started", extra={"health_port": settings.sms.worker_health_port})
    try:
        if started is not None:
            started(replier)
        await replier.work(poll_seconds=poll_seconds)
    finally:
        if health is not None:
            health.close()
        for sig in signals:
            loop.remove_signal_handler(sig)
        await services.aclose()  # replies in flight finish first (drain)
        logger.info("sms_worker.stopped")


def main() -> int:
    if "--help" in sys.argv[1:] or "-h" in sys.argv[1:]:
        usage = "usage: python -m sms_sender  (gateway with SMS_REPLIES=worker)"
        print(usage)  # noqa: T201
        return 0
    settings = settings_for("sms_sender", logger=logger, event="sms_worker.cannot_start")
    if settings is None:
        return 2
    asyncio.run(run(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
