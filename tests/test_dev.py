"""`wassla dev` on a fresh data directory: embedded Postgres, demo data, a gateway that serves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.support.processes import free_port


def test_wassla_dev_serves_with_embedded_defaults() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="wassla-dev-"))
    data_dir.chmod(0o755)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "LIVEKIT_"))}
    env.update({"WASSLA_DATA_DIR": str(data_dir), "PORT": str(port)})
    proc = subprocess.Popen(
        [sys.executable, "-m", "wassla.cli", "dev"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code
                if status == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.3)
        assert status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "demo workspace" in output
    assert "LiveKit not configured" in output
    assert "Traceback" not in output
