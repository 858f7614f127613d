"""Bench: the Twilio voice path of the real gateway, under uvicorn in a subprocess.

1. First TwiML: signed `POST /twilio-voice` (a new CallSid each: resolve the number, open the
   call and its conversation, store the greeting, render the TwiML) sent open-loop at RATE
   requests/s for SECONDS; latency from each request's scheduled send time, so a stall counts
   against us. Baseline in the same run: `GET /healthz` (one database round trip) at the
   same rate.
2. Per-turn overhead: callers post `SpeechResult` turns; the stand-in model answers after a
   fixed MODEL_DELAY. Overhead = turn latency - MODEL_DELAY. Baseline in the same run: the
   same chat completion called directly with the openai SDK.

Everything runs on loopback (embedded Postgres, the OpenAI-compatible stand-in, ephemeral
ports); nothing leaves the machine. Run: `.venv/bin/python bench/voice_twiml.py`
(options: --rate 200 --seconds 10 --turns 200 --callers 20 --model-delay 0.25).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import openai
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import loadgen  # noqa: E402  (bench/loadgen.py, beside this script)

from shared import migrate  # noqa: E402
from shared.devdb import start_embedded  # noqa: E402
from shared.models import BillingMode  # noqa: E402
from tests.standins.openai_api import ChatScript, OpenAIStandIn  # noqa: E402
from tests.support import factories  # noqa: E402

TOKEN = "bench-twilio-auth-token"
ACCOUNT = "AC" + "b" * 32
PUBLIC = "https://gateway.bench.test"
HOST = "gateway.bench.test"
NUMBER = "+15551234567"

_SERVE = """
import socket, sys, uvicorn
from shared.settings import Settings
from webhook_gateway.app import create_app
sock = socket.socket(fileno=int(sys.argv[1]))
config = uvicorn.Config(create_app(Settings()), log_level="warning", access_log=False,
                        lifespan="on")
uvicorn.Server(config).run(sockets=[sock])
"""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


async def seed(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate.apply(conn)
        ws = await factories.workspace(conn, billing_mode=BillingMode.LIVE, credits_minor=10**9)
        agent = await factories.agent(conn, ws.id, greeting="Hi, this is Sara from Acme.")
        await factories.channel(conn, ws.id, kind="voice", number=NUMBER, agent_id=agent.id)
    finally:
        await conn.close()


def start_gateway(dsn: str, data_dir: Path, openai_url: str) -> tuple[subprocess.Popen[bytes], str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    port = sock.getsockname()[1]
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "WASSLA_DATA_DIR": str(data_dir),
        "PUBLIC_BASE_URL": PUBLIC,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_API_BASE_URL": "http://127.0.0.1:9",  # never called by this bench
        "OPENAI_API_KEY": "bench",
        "OPENAI_BASE_URL": openai_url,
        "DB_POOL_MAX_SIZE": "20",
        "VOICE_RECORD_CALLS": "true",
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVE, str(sock.fileno())],
        cwd=ROOT,
        env=env,
        pass_fds=(sock.fileno(),),
    )
    sock.close()
    return proc, f"http://127.0.0.1:{port}"


def signed(url_path: str, params: dict[str, str]) -> tuple[str, dict[str, str]]:
    signature = RequestValidator(TOKEN).compute_signature(PUBLIC + url_path, params)
    return url_path, {"X-Twilio-Signature": signature}


def call_params(call_sid: str, **extra: str) -> dict[str, str]:
    return {"CallSid": call_sid, "AccountSid": ACCOUNT, "From": "+14155550123", "To": NUMBER,
            "CallStatus": "ringing", "Direction": "inbound", **extra}  # fmt: skip


def first_twiml_requests(count: int) -> list[bytes]:
    """Signed `/twilio-voice` requests, each a new call, built before the clock starts."""
    validator = RequestValidator(TOKEN)
    out = []
    for _ in range(count):
        params = call_params("CA" + uuid.uuid4().hex)
        signature = validator.compute_signature(PUBLIC + "/twilio-voice", params)
        out.append(loadgen.raw_form_post("/twilio-voice", params, signature=signature, host=HOST))
    return out


async def turns(
    client: httpx.AsyncClient, standin: OpenAIStandIn, total: int, callers: int, delay: float
) -> tuple[list[float], int]:
    standin.script_chat(*[ChatScript("Your order shipped yesterday.", first_token_delay=delay)
                          for _ in range(total + 10)])  # fmt: skip
    latencies: list[float] = []
    errors = 0
    per_caller = max(1, total // callers)

    async def caller() -> None:
        nonlocal errors
        call_sid = "CA" + uuid.uuid4().hex
        params = call_params(call_sid)
        path, headers = signed("/twilio-voice", params)
        await client.post(path, data=params, headers=headers)
        for n in range(1, per_caller + 1):
            path = f"/twilio-voice/turn?turn={n}&silent=0"
            params = call_params(call_sid, CallStatus="in-progress", SpeechResult=f"Question {n}")
            path, headers = signed(path, params)
            began = time.perf_counter()
            response = await client.post(path, data=params, headers=headers)
            if response.status_code == 200 and b"shipped yesterday" in response.content:
                latencies.append(time.perf_counter() - began)
            else:
                errors += 1

    await asyncio.gather(*(caller() for _ in range(callers)))
    return latencies, errors


async def direct_model(
    base_url: str, standin: OpenAIStandIn, n: int, delay: float, callers: int = 1
) -> list[float]:
    """The same chat completion called directly, `callers` at a time: the baseline a turn is
    compared with, under the same concurrency (so the harness's own costs cancel out)."""
    standin.script_chat(*[ChatScript("Your order shipped yesterday.", first_token_delay=delay)
                          for _ in range(n + callers)])  # fmt: skip
    client = openai.AsyncOpenAI(base_url=base_url, api_key="bench")
    out: list[float] = []

    async def caller(count: int) -> None:
        for _ in range(count):
            began = time.perf_counter()
            stream = await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            async for _chunk in stream:
                pass
            out.append(time.perf_counter() - began)

    try:
        await asyncio.gather(*(caller(max(1, n // callers)) for _ in range(callers)))
    finally:
        await client.close()
    return out


def make_data_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="wassla-bench-"))
    path.chmod(0o755)  # the embedded Postgres runs as its own system user
    return path


async def wait_ready(client: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if (await client.get("/healthz")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError("gateway did not start")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--callers", type=int, default=20)
    parser.add_argument("--model-delay", type=float, default=0.25)
    args = parser.parse_args()

    data_dir = await asyncio.to_thread(make_data_dir)
    standin = OpenAIStandIn().start()
    proc: subprocess.Popen[bytes] | None = None
    try:
        dsn = await asyncio.to_thread(start_embedded, data_dir)
        await seed(dsn)
        proc, url = start_gateway(dsn, data_dir, standin.base_url)
        limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
            await wait_ready(client)
            port = int(url.rsplit(":", 1)[1])
            raw = loadgen.RawClient(port)
            count = int(args.rate * args.seconds)
            await loadgen.open_loop(raw, first_twiml_requests(50), 50)  # warm-up
            health = [loadgen.raw_get("/healthz", host=HOST)] * count
            voice_requests = first_twiml_requests(count)

            print(f"== first TwiML: open loop at {args.rate:.0f} req/s for {args.seconds:.0f} s")
            base = await loadgen.open_loop(raw, health, args.rate)
            voice = await loadgen.open_loop(raw, voice_requests, args.rate, ok_marker=b"<Gather")
            await raw.aclose()
            for name, result in (("GET /healthz (baseline)", base),
                                 ("signed POST /twilio-voice", voice)):  # fmt: skip
                print(f"{name:28s} n={result['n']:5d} errors={result['errors']:3d} "
                      f"p50={result['p50']:7.1f} ms p95={result['p95']:7.1f} ms "
                      f"p99={result['p99']:7.1f} ms ({result['rps']:.0f} req/s served; "
                      f"{result['slow']} over 25 ms)")  # fmt: skip
            print(f"ratio /twilio-voice to /healthz: p50 x{voice['p50'] / base['p50']:.2f}, "
                  f"p99 x{voice['p99'] / base['p99']:.2f}, throughput "
                  f"x{voice['rps'] / base['rps']:.2f}   (target p99 < 25 ms)")  # fmt: skip

            print(f"== per-turn overhead: model delay {args.model_delay * 1000:.0f} ms, "
                  f"{args.callers} concurrent callers, {args.turns} turns")  # fmt: skip
            model = await direct_model(
                standin.base_url, standin, args.turns, args.model_delay, args.callers
            )
            turn, turn_err = await turns(
                client, standin, args.turns, args.callers, args.model_delay
            )
            overhead = [t - args.model_delay for t in turn]
            over_direct = [t - statistics.median(model) for t in turn]
            over_p95 = pct(turn, 95) - pct(model, 95)
            print(f"direct model calls, {args.callers} at a time (baseline) n={len(model):5d} "
                  f"p50={ms(pct(model, 50))} p95={ms(pct(model, 95))}")  # fmt: skip
            print(f"turn latency                  n={len(turn):5d} errors={turn_err:3d} "
                  f"p50={ms(pct(turn, 50))} p95={ms(pct(turn, 95))}")  # fmt: skip
            print(f"overhead beyond model delay   p50={ms(pct(overhead, 50))} "
                  f"p95={ms(pct(overhead, 95))}   (target p95 < 50 ms)")  # fmt: skip
            print(f"overhead beyond direct calls  p50={ms(pct(over_direct, 50))} "
                  f"p95={ms(pct(over_direct, 95))}; p95 turn - p95 direct = {ms(over_p95)}"
                  "   (target p95 < 50 ms)")  # fmt: skip
    finally:
        if proc is not None:
            loadgen.stop_process(proc, timeout=30)
        standin.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
