"""fly.toml and the Dockerfile held to the code: commands exist, checks hit real health paths."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from shared import migrate
from shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
FLY = tomllib.loads((ROOT / "fly.toml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()
VENV_BIN = Path(sys.executable).parent


def _run(
    command: str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    argv = shlex.split(command) + list(extra)
    if argv[0] == "python":
        argv[0] = sys.executable
    elif (VENV_BIN / argv[0]).exists():
        argv[0] = str(VENV_BIN / argv[0])
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_one_app_in_frankfurt_with_three_process_groups() -> None:
    assert FLY["primary_region"] == "fra"
    assert set(FLY["processes"]) == {"gateway", "sms", "worker"}
    assert FLY["kill_signal"] == "SIGTERM"
    assert FLY["kill_timeout"] == 300


@pytest.mark.parametrize("group", ["gateway", "sms", "worker"])
def test_every_process_command_exists_and_starts(group: str) -> None:
    command = FLY["processes"][group]
    result = _run(command, "--help")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_http_service_only_on_the_gateway_and_never_stopped() -> None:
    service: dict[str, Any] = FLY["http_service"]
    assert service["processes"] == ["gateway"]
    assert service["internal_port"] == int(FLY["env"]["PORT"]) == Settings().port
    assert service["auto_stop_machines"] in ("off", False)
    assert service["min_machines_running"] >= 1
    assert [c["path"] for c in service["checks"]] == ["/healthz"]


def test_worker_has_an_http_check_on_its_health_port() -> None:
    checks = [c for c in FLY["checks"].values() if c.get("processes") == ["worker"]]
    assert len(checks) == 1
    check = checks[0]
    assert check["type"] == "http" and check["path"] == "/"
    assert check["port"] == int(FLY["env"]["WORKER_HEALTH_PORT"]) == Settings().worker.health_port


def test_sms_group_has_an_http_check_on_its_health_port() -> None:
    checks = [c for c in FLY["checks"].values() if c.get("processes") == ["sms"]]
    assert len(checks) == 1
    check = checks[0]
    assert check["type"] == "http" and check["path"] == "/"
    configured = Settings(sms={"worker_health_port": FLY["env"]["SMS_WORKER_HEALTH_PORT"]})
    assert check["port"] == configured.sms.worker_health_port


def test_every_group_declares_its_prometheus_scrape_on_the_port_it_serves() -> None:
    scrapes = {group: m for m in FLY["metrics"] for group in m["processes"]}
    assert set(scrapes) == set(FLY["processes"])
    assert all(m["path"] == "/metrics" for m in FLY["metrics"])
    configured = Settings(
        metrics_port=FLY["env"]["METRICS_PORT"],
        worker={"metrics_port": FLY["env"]["WORKER_METRICS_PORT"]},
        sms={"worker_health_port": FLY["env"]["SMS_WORKER_HEALTH_PORT"]},
    )
    assert scrapes["gateway"]["port"] == configured.metrics_port
    assert scrapes["worker"]["port"] == configured.worker.metrics_port
    assert scrapes["sms"]["port"] == configured.sms.worker_health_port  # beside its check
    # The public service never answers /metrics: it is on a port of its own.
    assert configured.metrics_port != FLY["http_service"]["internal_port"]


def test_drain_timeout_fits_inside_the_kill_timeout() -> None:
    configured = int(FLY["env"]["WORKER_DRAIN_TIMEOUT_SECONDS"])
    assert configured == Settings().worker.drain_timeout_seconds
    assert configured + 10 <= FLY["kill_timeout"]  # room for on_session_end uploads


def test_bluegreen_deploys_with_vm_sizes_per_group() -> None:
    assert FLY["deploy"]["strategy"] == "bluegreen"
    sized = {g for vm in FLY["vm"] for g in vm["processes"]}
    assert sized == set(FLY["processes"])


def test_gateways_queue_sms_replies_for_the_sms_group() -> None:
    # Every group reads the same [env]: gateways only queue, the sms group sends.
    assert Settings(sms={"replies": FLY["env"]["SMS_REPLIES"]}).sms.replies == "worker"
    assert FLY["processes"]["sms"] == "python -m sms_sender"


async def test_release_command_is_the_real_migrate_command(pg_dsn: str) -> None:
    admin = await asyncpg.connect(pg_dsn)
    await admin.execute("drop database if exists fly_release")
    await admin.execute("create database fly_release")
    await admin.close()
    dsn = pg_dsn.replace("/postgres?", "/fly_release?")
    result = _run(FLY["deploy"]["release_command"], env={"DATABASE_URL": dsn,
                                                         "WASSLA_ENV": "production"})  # fmt: skip
    assert result.returncode == 0, result.stderr
    conn = await asyncpg.connect(dsn)
    try:
        await migrate.check_current(conn)  # raises if anything is pending
    finally:
        await conn.close()


def test_production_commands_refuse_to_start_without_their_secrets() -> None:
    env = {"WASSLA_ENV": "production", "DATABASE_URL": "", "TWILIO_AUTH_TOKEN": "",
           "WASSLA_JWT_SECRET": ""}  # fmt: skip
    gateway = _run(FLY["processes"]["gateway"], env=env)
    assert gateway.returncode != 0
    assert "DATABASE_URL" in gateway.stderr and "TWILIO_AUTH_TOKEN" in gateway.stderr
    assert "Traceback" not in gateway.stderr
    sms = _run(FLY["processes"]["sms"], env={**env, "TWILIO_ACCOUNT_SID": ""})
    assert sms.returncode != 0 and "TWILIO_AUTH_TOKEN" in sms.stderr
    assert "Traceback" not in sms.stderr
    release = _run(FLY["deploy"]["release_command"], env=env)
    assert release.returncode != 0 and "DATABASE_URL" in release.stderr


def test_dockerfile_shape() -> None:
    lines = [ln.strip() for ln in DOCKERFILE.splitlines() if ln.strip() and not ln.startswith("#")]
    froms = [ln for ln in lines if ln.startswith("FROM ")]
    assert all(ln.startswith("FROM python:3.11-slim") for ln in froms)
    final_stage = lines[lines.index(froms[-1]) :]
    assert any(ln.startswith("USER ") and ln.split()[1] not in ("0", "root") for ln in final_stage)
    cmd = [ln for ln in final_stage if ln.startswith("CMD ")]
    assert cmd and cmd[-1].startswith('CMD ["'), "exec-form CMD so python is PID 1"
    assert "download-files" in DOCKERFILE
    for line in lines:
        if line.startswith("COPY ") and "--from=" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
    # The dependency layer is built from pyproject.toml before the code is copied.
    assert DOCKERFILE.index("COPY pyproject.toml") < DOCKERFILE.index("COPY shared")


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(VENV_BIN)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (it comes with the dev extras)")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True,
                            text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
