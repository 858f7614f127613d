"""Child processes of the test run (servers, the worker): ports, start-up and shutdown."""

from __future__ import annotations

import random
import socket
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


# Ports free_port() gave out in this process: two servers asked for ports before either
# binds must not get the same one.
_HANDED_OUT: set[int] = set()


def ephemeral_port_range() -> tuple[int, int]:
    """The kernel's range for ports it picks itself (outgoing connections, binds to port 0)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32_768, 60_999  # Linux's default


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free on every interface now, for a server to bind, below the kernel's ephemeral
    range: a port the kernel gave out was sometimes handed to another socket before the
    server bound it (a worker failed with "address already in use")."""
    low = ephemeral_port_range()[0]
    for _ in range(200):
        port = random.randrange(max(10_000, low - 12_000), low)
        if port in _HANDED_OUT:
            continue
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("0.0.0.0", port))  # servers bind all interfaces, not loopback alone
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError(f"no free port below {low}")


def log_tail(log: Path, lines: int = 40) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def wait_for_log_line(
    process: subprocess.Popen[bytes],
    log: Path,
    ready: str,
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
) -> None:
    """Until `ready` appears in the process's log; RuntimeError if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and ready in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log_tail(log)}")
        time.sleep(interval)
    raise RuntimeError(f"{what} not ready within {timeout}s:\n{log_tail(log)}")


def stop_process(
    process: subprocess.Popen[bytes] | None, *, grace: float, kill_wait: float = 5.0
) -> int | None:
    """SIGTERM, `grace` s to exit, then SIGKILL; the exit code (None: never started)."""
    if process is None:
        return None
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            # livekit-server and livekit-sip treat the first signal as "drain"; we do not wait.
            process.kill()
            process.wait(timeout=kill_wait)
    return process.returncode
