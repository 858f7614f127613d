"""`wassla dev` with nothing configured: the whole stack starts, prints one link, and works.

One launch covers the start-up (embedded Postgres, the Twilio sandbox, livekit-server, the
gateway, the SMS sender, the worker registered with that livekit-server), a text that the
agent answers into the sandbox, and Ctrl-C stopping everything; the supervisor's handling
of a child that dies runs on real processes of its own.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from twilio.request_validator import RequestValidator

from shared.settings import Settings
from tests.standins.openai_api import OpenAIStandIn
from tests.support import livekit_server
from tests.support.dev_stack import DevStack
from tests.support.polling import eventually
from tests.support.processes import REPO
from wassla import livekit_local
from wassla.dev import (
    DEMO_NUMBER,
    NO_MODEL_ADVICE,
    SECRETS_FILE,
    DevSecrets,
    Stack,
    _summary,
)
from wassla.supervisor import Supervisor
from wassla.twilio_sandbox import ACCOUNT_SID as SANDBOX_ACCOUNT_SID

CONTACT = "+15557654321"

pytestmark = pytest.mark.skipif(
    livekit_server.skip_reason() is not None, reason=str(livekit_server.skip_reason())
)


def _inbound_sms(stack: DevStack, body: str) -> tuple[dict[str, str], str]:
    sid = "SM" + uuid.uuid4().hex
    params = {
        "MessageSid": sid,
        "SmsMessageSid": sid,
        "SmsSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "From": CONTACT,
        "To": DEMO_NUMBER,
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }
    url = stack.base_url + "/twilio-sms"  # PUBLIC_BASE_URL of a dev stack: where it listens
    token = DevSecrets.of(stack.data_dir).twilio_auth_token  # what the stack made on its start
    return params, RequestValidator(token).compute_signature(url, params)


async def test_wassla_dev_runs_the_whole_stack_with_nothing_configured(
    openai_standin: OpenAIStandIn,
) -> None:
    openai_standin.script_chat("We open at nine tomorrow.")
    with DevStack.start(openai_base_url=openai_standin.base_url) as stack:
        said = "\n".join(stack.launcher_lines())
        assert stack.link.startswith(f"{stack.base_url}/console/login?token=")
        assert "local Twilio sandbox records the texts" in said
        assert f"local livekit-server on 127.0.0.1:{stack.livekit_port}" in said
        assert "voice worker registered as 'wassla-voice'" in said
        assert "OPENAI_API_KEY is not set" not in said
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.get(stack.base_url + "/healthz")).status_code == 200
            livekit = await http.get(f"http://127.0.0.1:{stack.livekit_port}/")
            assert livekit.status_code == 200
            worker = await http.get(f"http://127.0.0.1:{stack.worker_health_port}/worker")
            assert worker.json()["agent_name"] == "wassla-voice"
            signed_in = await http.get(stack.link, follow_redirects=False)
            assert signed_in.status_code in (302, 303), signed_in.text
            assert signed_in.cookies, "the link set no sign-in cookie"

            params, signature = _inbound_sms(stack, "When do you open tomorrow?")
            answer = await http.post(
                stack.base_url + "/twilio-sms",
                data=params,
                headers={"X-Twilio-Signature": signature},
            )
            assert answer.status_code == 200, answer.text

        def delivered_reply() -> dict[str, object] | None:
            texts = [t for t in stack.sandbox_texts() if t["to"] == CONTACT]
            return texts[0] if texts and texts[0]["status"] == "delivered" else None

        # The sender generated the reply, the sandbox recorded it and then reported it
        # delivered through the gateway's signed status callback.
        reply = await eventually(delivered_reply, within=60, what="the reply in the sandbox")
        assert reply["from"] == DEMO_NUMBER
        assert reply["body"] == "We open at nine tomorrow."
        assert "sms.status" in stack.output  # the gateway accepted the signed callback
        status = stack.interrupt()
    assert status == 0, stack.output[-4000:]
    said = "\n".join(stack.launcher_lines())
    for part in ("worker", "sms-sender", "gateway", "livekit-server"):
        assert f"stopping {part}" in said
    assert "killing it" not in said
    assert "Traceback" not in stack.output


def test_start_up_says_the_agent_cannot_think_without_an_openai_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    stack = Stack.plan(settings, "postgresql://localhost/unused")
    _summary(stack, None, {})
    out = capsys.readouterr().out
    assert NO_MODEL_ADVICE in out
    assert "OPENAI_BASE_URL" in NO_MODEL_ADVICE and "OpenAI-compatible" in NO_MODEL_ADVICE
    keyed = Settings(_env_file=None, data_dir=tmp_path, openai={"api_key": "k"})  # type: ignore[call-arg]
    _summary(Stack.plan(keyed, "postgresql://localhost/unused"), None, {})
    assert NO_MODEL_ADVICE not in capsys.readouterr().out


def test_configured_settings_replace_the_embedded_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured = {
        "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
        "TWILIO_AUTH_TOKEN": "real-token",
        "LIVEKIT_URL": "wss://lk.example.test",
        "LIVEKIT_API_KEY": "k",
        "LIVEKIT_API_SECRET": "s" * 32,
    }
    for name, value in configured.items():  # as a user configures them
        monkeypatch.setenv(name, value)
    stack = Stack.plan(Settings(_env_file=None, data_dir=tmp_path), "postgresql://x/y")  # type: ignore[call-arg]
    assert not stack.sandbox and stack.livekit is None and stack.run_worker
    # The children get the configured values: nothing local is put in between.
    assert {name: stack.env[name] for name in configured} == configured
    for name in configured:
        monkeypatch.delenv(name)
    bare = Stack.plan(Settings(_env_file=None, data_dir=tmp_path), "postgresql://x/y")  # type: ignore[call-arg]
    assert bare.sandbox and bare.livekit is not None and bare.run_worker
    assert bare.env["TWILIO_ACCOUNT_SID"] == SANDBOX_ACCOUNT_SID
    assert bare.env["LIVEKIT_URL"] == bare.livekit.url
    assert bare.env["LIVEKIT_API_KEY"] == livekit_local.API_KEY


def test_dev_secrets_are_random_per_data_dir_kept_across_restarts_and_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("WASSLA_JWT_SECRET", "TWILIO_AUTH_TOKEN", "TWILIO_ACCOUNT_SID"):
        monkeypatch.delenv(name, raising=False)

    def plan(data_dir: Path) -> Stack:
        return Stack.plan(Settings(_env_file=None, data_dir=data_dir), "postgresql://x/y")  # type: ignore[call-arg]

    first, again, other = plan(tmp_path / "a"), plan(tmp_path / "a"), plan(tmp_path / "b")
    for name in ("WASSLA_JWT_SECRET", "TWILIO_AUTH_TOKEN"):
        assert first.env[name] == again.env[name] != other.env[name]
        assert len(first.env[name]) >= 32
    assert (tmp_path / "a" / SECRETS_FILE).stat().st_mode & 0o777 == 0o600


async def test_a_child_that_dies_is_named_and_the_others_are_stopped() -> None:
    said: list[str] = []
    supervisor = Supervisor(said.append)
    env = {"PYTHONUNBUFFERED": "1", "PATH": "/usr/bin:/bin"}
    sleeper = await supervisor.spawn(
        "sleeper", [sys.executable, "-c", "import time; time.sleep(120)"], env=env, stop_grace=5
    )
    await supervisor.spawn(
        "crasher",
        [sys.executable, "-c", "import sys; print('about to fail'); sys.exit(3)"],
        env=env,
    )
    dead = await asyncio.wait_for(supervisor.watch(asyncio.Event()), timeout=30)
    assert dead is not None and dead.name == "crasher"
    supervisor.report_exit(dead)
    assert "crasher exited with status 3" in said
    assert "about to fail" in dead.tail
    await supervisor.stop_all()
    assert sleeper.process.returncode == -15  # SIGTERM, within its grace
    assert "stopping sleeper" in said and "stopping crasher" not in said


_ORPHAN_PROBE = """
import subprocess, sys, time
from wassla.supervisor import dying_with_parent
child = subprocess.Popen(
    dying_with_parent([sys.executable, "-c", "import time; time.sleep(120)"]),
    stdout=subprocess.DEVNULL,  # so that the test's read of our stdout ends with us
)
print(child.pid, flush=True)
time.sleep(120)
"""


def _gone_or_zombie(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in status  # dead, waiting for a reaper this container may not have


def _past_setpriv(pid: int) -> bool:
    """setpriv sets the parent-death signal just before it execs the command."""
    return not Path(f"/proc/{pid}/exe").readlink().name.startswith("setpriv")


async def test_a_child_gets_sigterm_when_the_process_that_started_it_is_killed() -> None:
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _ORPHAN_PROBE, stdout=subprocess.PIPE, cwd=REPO
    )
    assert parent.stdout is not None
    child_pid = int(await parent.stdout.readline())
    # Killed before setpriv's prctl, the parent would leave an orphan no signal reaches
    # (11 of 40 under load): that race is the parent's death at its child's first
    # millisecond, not what this test is about.
    await eventually(lambda: _past_setpriv(child_pid), within=10, what="setpriv's exec")
    parent.kill()
    await parent.wait()
    await eventually(lambda: _gone_or_zombie(child_pid), within=10, what="the orphan to stop")
