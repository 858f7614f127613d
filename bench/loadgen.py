"""A cheap open-loop load generator shared by the HTTP benches.

The generator shares the machine's two cores with the servers it measures, so it must cost
far less CPU than they do: requests are signed and serialised before the clock starts and
sent over a minimal keep-alive HTTP/1.1 client (no httpx on the hot path).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from typing import Any
from urllib.parse import urlencode


def stop_process(proc: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    """Terminate a bench's child process, killing it when it outlasts `timeout`."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def pct(values: list[float], q: float) -> float:
    """The q-th percentile of `values` (seconds), in milliseconds."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] * 1000


def raw_form_post(path: str, params: dict[str, str], *, signature: str, host: str) -> bytes:
    """A signed form POST as raw HTTP/1.1 bytes."""
    body = urlencode(params).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"X-Twilio-Signature: {signature}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def raw_get(path: str, *, host: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


class RawClient:
    """A minimal keep-alive HTTP/1.1 client over a pool of loopback connections."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._all: list[asyncio.StreamWriter] = []

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send one request; return the status and the body."""
        if self._idle:
            reader, writer = self._idle.pop()
            try:
                return await self._exchange(reader, writer, raw)
            except (OSError, asyncio.IncompleteReadError):
                pass  # the server closed an idle keep-alive connection: retry on a new one
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self._all.append(writer)
        return await self._exchange(reader, writer, raw)

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes
    ) -> tuple[int, bytes]:
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = await reader.readexactly(length)
        self._idle.append((reader, writer))
        return status, body

    async def aclose(self) -> None:
        for writer in self._all:
            writer.close()


async def open_loop(
    client: RawClient, requests: list[bytes], rate: float, *, ok_marker: bytes = b""
) -> dict[str, Any]:
    """Fire `requests` at `rate` per second on schedule, whatever the responses do.

    Latency counts from each request's scheduled time, so a stalled server cannot slow the
    offered load down and hide its own queueing.
    """
    latencies: list[float] = []
    slow_at: list[float] = []  # offsets (s) of requests over 25 ms: one stall or spread out?
    errors = 0

    async def one(when: float, raw: bytes) -> None:
        nonlocal errors
        await asyncio.sleep(max(0.0, when - time.perf_counter()))
        try:
            status, body = await client.request(raw)
            ok = status == 200 and ok_marker in body
        except (OSError, asyncio.IncompleteReadError, ValueError):
            ok = False
        if ok:
            latency = time.perf_counter() - when
            latencies.append(latency)
            if latency > 0.025:
                slow_at.append(when - start)
        else:
            errors += 1

    start = time.perf_counter() + 0.2
    await asyncio.gather(*(one(start + i / rate, raw) for i, raw in enumerate(requests)))
    elapsed = time.perf_counter() - start
    return {
        "n": len(latencies), "errors": errors, "rps": len(latencies) / elapsed,
        "p50": pct(latencies, 50), "p95": pct(latencies, 95), "p99": pct(latencies, 99),
        "latencies": latencies,
        "slow_seconds": sorted({int(t) for t in slow_at}), "slow": len(slow_at),
    }  # fmt: skip


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """User + system CPU a process (or one of its threads) has used so far (0 when gone)."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        with open(path, "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime


def postgres_cpu_seconds() -> float:
    """CPU used so far by every live Postgres process on the machine (server and backends)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm", "rb") as f:
                    if f.read().strip() != b"postgres":
                        continue
            except OSError:
                continue
            total += cpu_seconds(int(entry))
    return total
