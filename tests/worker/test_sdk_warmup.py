"""The forkserver's openai SDK warm-up (worker/sdk_warmup.py): after it, a call's first reply
builds no pydantic schema and evaluates no type hints on the job's event loop, and it leaves
behind nothing a fork must not inherit."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from worker import sdk_warmup

# Each run a fresh interpreter (this test process has long since built the SDK's models):
# an async chat stream as the worker's LLM plugin makes it, profiled, with or without the
# warm-up first.
_PROBE = """
import asyncio, cProfile, json, os, sys, threading
import httpx2, openai
from worker import sdk_warmup

def sockets():
    found = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            found += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except FileNotFoundError:  # the listing's own descriptor, closed by now
            pass
    return found

open_before = sockets()
chunks = sdk_warmup.exercise_openai_sdk() if sys.argv[1] == "warm" else 0
left = {"threads": threading.active_count(), "new_sockets": sockets() - open_before}

def chunk(delta, finish=None):
    return {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
usage = {**chunk({}), "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                                               "total_tokens": 2}}
sse = "".join(f"data: {json.dumps(c)}\\n\\n" for c in
              [chunk({"role": "assistant", "content": ""}), chunk({"content": "We open at nine."}),
               chunk({}, "stop"), usage]) + "data: [DONE]\\n\\n"

async def first_reply():
    transport = httpx2.MockTransport(lambda request: httpx2.Response(
        200, headers={"content-type": "text/event-stream"}, content=sse.encode()))
    async with openai.AsyncOpenAI(api_key="k", base_url="http://probe.invalid/v1",
                                  http_client=httpx2.AsyncClient(transport=transport)) as client:
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "system", "content": "Be brief."},
                                 {"role": "user", "content": "When do you open?"}],
            stream=True, stream_options={"include_usage": True})
        async with stream:
            return [c async for c in stream]

profile = cProfile.Profile()
profile.enable()
replies = asyncio.run(first_reply())
profile.disable()
profile.create_stats()
def calls(path, name):
    return sum(stats[0] for (file, _, fn), stats in profile.stats.items()
               if file.endswith(path) and fn == name)
print(json.dumps({**left, "chunks": chunks, "replies": len(replies),
                  "schemas_built": calls("_generate_schema.py", "generate_schema"),
                  "type_hints": calls("typing.py", "get_type_hints")}))
"""


def _probe(mode: str) -> dict[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    figures: dict[str, int] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def test_after_the_warm_up_a_first_reply_builds_no_schema_and_no_type_hints() -> None:
    cold, warm = _probe("cold"), _probe("warm")
    assert cold["replies"] == warm["replies"] == 4
    # Without it, the first reply builds them (so the probe can tell).
    assert cold["schemas_built"] > 0 and cold["type_hints"] > 0, cold
    assert warm["schemas_built"] == 0 and warm["type_hints"] == 0, warm
    assert warm["chunks"] == 5  # role, words, tool call, finish, usage


def test_the_warm_up_leaves_no_thread_or_socket_for_the_fork() -> None:
    warm = _probe("warm")
    assert warm["threads"] == 1
    assert warm["new_sockets"] == 0


def test_a_warm_up_the_sdk_refuses_is_logged_and_the_worker_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refused(*args: object, **kwargs: object) -> None:
        raise TypeError("an SDK that changed its client's signature")

    monkeypatch.setattr(sdk_warmup.openai_sdk, "OpenAI", refused)
    with caplog.at_level(logging.WARNING, logger="worker.sdk_warmup"):
        sdk_warmup.warm_up.__wrapped__()  # not the process's cached run
    [record] = [r for r in caplog.records if r.getMessage() == "worker.sdk_warmup_failed"]
    assert "changed its client's signature" in record.__dict__["error"]
