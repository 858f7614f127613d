"""Child processes of the test run (servers, the worker): ports, start-up and shutdown."""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port the kernel just gave out on loopback (closed again for the server to bind)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM when the test process dies (no orphans on a kill)."""
    pr_set_pdeathsig = 1
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


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
