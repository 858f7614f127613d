"""Every Prometheus metric of the service, in one place (names prefixed `wassla_`).

Each process serves what it counted at `/metrics`: the gateway on its metrics port
(settings.metrics_port), the SMS sender on its health port, the worker on
settings.worker.metrics_port. The worker's calls run in job processes of their own, so the
worker runs prometheus-client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set by
`python -m worker` before anything imports prometheus-client): every process writes its
values to files there and the main process's scrape adds them up (`multiprocess_registry`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

# No `*_created` series beside every counter and histogram: twice the series, no use here.
disable_created_metrics()  # type: ignore[no-untyped-call]

# --- the gateway -------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "wassla_http_requests",
    "Gateway HTTP requests (Twilio webhooks, the Channels API) by route template and status.",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "wassla_http_request_duration_seconds",
    "Gateway HTTP request latency, first byte in to last byte out, by route template.",
    ["route"],
    # Twilio gives a webhook 15 s in all; an SMS acknowledgement takes milliseconds.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0),
)

# --- SMS replies, charges, the database (any process) -----------------------------------

SMS_REPLIES = Counter(
    "wassla_sms_replies",
    "SMS replies by outcome (sent, failed, unknown, skipped) and reason (why not sent).",
    ["outcome", "reason"],
)
CHARGES = Counter(
    "wassla_charges_recorded",
    "Charges recorded (created, not repeated by an idempotency key) by kind.",
    ["kind"],
)
DATABASE_UNAVAILABLE = Counter(
    "wassla_database_unavailable",
    "Times Postgres could not be reached or refused work, by where it was caught.",
    ["where"],
)

# --- the voice worker --------------------------------------------------------------------

LIVE_CALLS = Gauge(
    "wassla_live_calls",
    "Voice sessions (phone calls and playgrounds) running now.",
    # Summed over the worker's live job processes (a dead one's calls are not live).
    multiprocess_mode="livesum",
)
VOICE_TURN_LATENCY = Histogram(
    "wassla_voice_turn_latency_seconds",
    "Where a voice turn's time went, by stage (the framework's per-turn metrics).",
    ["stage"],
    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0),
)
BARGE_INS = Counter(
    "wassla_voice_barge_ins",
    "Agent replies the caller interrupted.",
)


def multiprocess_dir() -> Path | None:
    """prometheus-client's own switch: the directory of multiprocess mode, or None."""
    value = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(value) if value else None


class _LiveProcessesCollector(Collector):
    """MultiProcessCollector that first drops the live gauges of processes that died
    (a killed job process's calls are over; nobody called mark_process_dead for it)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._inner = multiprocess.MultiProcessCollector(None, str(path))  # type: ignore[no-untyped-call]

    def collect(self) -> Iterable[Metric]:
        for file in self._path.glob("gauge_live*_*.db"):
            pid = file.stem.rsplit("_", 1)[-1]
            if pid.isdigit() and not _alive(int(pid)):
                multiprocess.mark_process_dead(int(pid), str(self._path))  # type: ignore[no-untyped-call]
        result: Iterable[Metric] = self._inner.collect()  # type: ignore[no-untyped-call]
        return result


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def registry() -> CollectorRegistry:
    """What a scrape of this process reports: every process's values in multiprocess mode,
    else this process's own."""
    path = multiprocess_dir()
    if path is None:
        return REGISTRY
    combined = CollectorRegistry(auto_describe=True)
    combined.register(_LiveProcessesCollector(path))
    return combined


def exposition() -> tuple[bytes, str]:
    """The scrape's body and content type."""
    return generate_latest(registry()), CONTENT_TYPE_LATEST


_REQUEST_TIMEOUT_SECONDS = 2.0


async def serve(port: int, host: str | None = None) -> asyncio.Server:
    """A small HTTP server answering `GET /metrics` (anything else: 404), on this loop; on
    every interface by default, IPv6 too (Fly's private network is IPv6)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_REQUEST_TIMEOUT_SECONDS):
                head = await reader.readuntil(b"\r\n\r\n")
            writer.write(respond(head))
            await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a prober that hung up or sent nonsense
        finally:
            with contextlib.suppress(OSError):
                writer.close()

    return await asyncio.start_server(answer, host, port, limit=8192)


def is_metrics_request(head: bytes) -> bool:
    """`GET /metrics` (a query string allowed) in a request's first line."""
    parts = head.split(b"\r\n", 1)[0].split(b" ")
    return len(parts) == 3 and parts[0] == b"GET" and parts[1].split(b"?", 1)[0] == b"/metrics"


def respond(head: bytes) -> bytes:
    """The whole HTTP/1.1 answer to a request to a metrics server."""
    if not is_metrics_request(head):
        return http_response(b"404 Not Found", b"text/plain", b"not found\n")
    body, content_type = exposition()
    return http_response(b"200 OK", content_type.encode(), body)


def http_response(status: bytes, content_type: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\nContent-Type: " + content_type
        + b"\r\nContent-Length: " + str(len(body)).encode()
        + b"\r\nConnection: close\r\n\r\n" + body
    )  # fmt: skip
