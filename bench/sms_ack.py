"""Bench the SMS acknowledgement path: signed `POST /twilio-sms` against a bare FastAPI
endpoint returning fixed TwiML, in the same run, on this machine.

    .venv/bin/python bench/sms_ack.py [--replies inline|worker|none] [--rate 200]
        [--seconds 10] [--concurrency 32,SOFT_LIMIT] [--closed-seconds 4] [--closed-rounds 3]

Processes (each its own, so none steals another's event loop):
  - the real gateway app under uvicorn (embedded Postgres in a temp WASSLA_DATA_DIR, or
    DATABASE_URL), with the Twilio REST and OpenAI-compatible stand-ins (zero model delay)
    in a third process;
  - a bare FastAPI app under uvicorn with the same server settings, returning `<Response/>`;
  - the same with only the gateway's signature check (no database): the ceiling for any
    signed webhook on this stack, printed beside the ratio;
  - this process: an open-loop load generator (requests fire on schedule, latency counted
    from the scheduled time, so a slow server cannot slow the offered load down).

Prints: ack latency p50/p99 at the offered rate for both, closed-loop throughput of both and
their ratio, and inbound-to-REST-send latency (p50/p95/p99) read from the Twilio stand-in's
log joined with our reply rows. Access logs are off in both servers.

Throughput is each server's maximum: closed loops run at 32 requests in flight and at the
number Fly's proxy may have in flight on one gateway machine (fly.toml's
http_service.concurrency.soft_limit), and each server's best is compared. The bare endpoint
peaks at any of them; the gateway, whose every acknowledgement waits for a commit, needs
more requests in flight to keep its core busy (at 32 it idles while they all wait on
Postgres). Both figures are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import Response

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from loadgen import RawClient, cpu_seconds, pct, postgres_cpu_seconds, raw_get, stop_process  # noqa: E402  (bench/loadgen.py, beside this script)

from shared.devdb import start_embedded, stop_embedded  # noqa: E402

OUR_NUMBER = "+15551234567"
ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "bench-twilio-auth-token"
PUBLIC_BASE_URL = "https://gateway.bench.test"
CONTACTS = 500


# --- child processes -------------------------------------------------------------------------


def _listen() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def _serve(app: Any) -> None:
    import uvicorn

    sock = _listen()
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


def serve_gateway() -> None:
    from shared.settings import Settings
    from webhook_gateway.app import create_app

    _serve(create_app(Settings()))


def serve_bare() -> None:
    app = FastAPI()
    body = '<?xml version="1.0" encoding="UTF-8"?><Response />'

    @app.post("/twilio-sms")
    async def bare(request: Request) -> Response:
        await request.body()  # read the form as the gateway does
        return Response(body, media_type="application/xml")

    _serve(app)


def serve_signed_only() -> None:
    """The ceiling for any signed webhook here: the gateway's own signature check
    (webhook_gateway.twilio_signature, the twilio library's validator) and its TwiML on a
    plain route as /twilio-sms has, no database. Not a target; it shows how much of the gap
    to bare is the check itself."""
    from types import SimpleNamespace

    from shared.settings import Settings
    from webhook_gateway.twilio_signature import verified_twilio_request
    from webhook_gateway.twiml import empty_response

    app = FastAPI()
    settings = Settings()
    app.state.gateway = SimpleNamespace(services=SimpleNamespace(settings=settings))

    async def signed(request: Request) -> Response:
        await verified_twilio_request(request, settings)
        return empty_response()

    app.router.add_route("/twilio-sms", signed, methods=["POST"])
    _serve(app)


def serve_standins() -> None:
    from tests.standins.openai_api import OpenAIStandIn
    from tests.standins.twilio_api import TwilioStandIn

    openai = OpenAIStandIn(default_reply="Thanks, we are open 9 to 5.").start()
    twilio = TwilioStandIn(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN).start()
    print(json.dumps({"openai": openai.base_url, "twilio": twilio.base_url}), flush=True)
    for line in sys.stdin:
        if line.strip() == "dump":
            print(json.dumps(twilio.messages), flush=True)
    openai.stop()
    twilio.stop()


def _spawn(role: str, env: dict[str, str]) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", role],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


def _spawn_reply_worker(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "sms_sender"],
        env=env,
        cwd=ROOT,
        stderr=subprocess.DEVNULL,
        text=True,
    )


async def start_reply_worker(env: dict[str, str]) -> subprocess.Popen[str]:
    """A `python -m sms_sender`, once its health check says it listens."""
    proc = _spawn_reply_worker(env)
    await wait_listening(int(env["SMS_WORKER_HEALTH_PORT"]))
    return proc


@asynccontextmanager
async def listening(dsn: str) -> AsyncIterator[None]:
    """A LISTEN on the reply queue's channel that reads and drops every notification."""
    import asyncpg

    from shared import sms_outbox

    conn = await asyncpg.connect(dsn)
    try:
        await conn.add_listener(sms_outbox.NOTIFY_CHANNEL, lambda *_: None)
        yield
    finally:
        await conn.close()


# --- load ------------------------------------------------------------------------------------


def _requests(count: int, prefix: str) -> list[tuple[str, bytes]]:
    """Signed inbound SMS webhooks as raw HTTP/1.1 requests (built before the clock starts)."""
    from urllib.parse import urlencode

    from twilio.request_validator import RequestValidator

    validator = RequestValidator(AUTH_TOKEN)
    url = PUBLIC_BASE_URL + "/twilio-sms"
    out = []
    for i in range(count):
        # SM + 32 hex digits, as Twilio's (the gateway refuses any other shape), unique per run.
        sid = "SM" + hashlib.md5(f"{prefix}:{i}".encode(), usedforsecurity=False).hexdigest()
        params = {
            "MessageSid": sid, "SmsMessageSid": sid, "SmsSid": sid, "AccountSid": ACCOUNT_SID,
            "From": f"+1555{2000000 + i % CONTACTS:07d}", "To": OUR_NUMBER,
            "Body": "Hi, are you open today? 👋", "NumSegments": "1", "NumMedia": "0",
            "SmsStatus": "received", "ApiVersion": "2010-04-01",
        }  # fmt: skip
        body = urlencode(params).encode()
        head = (
            "POST /twilio-sms HTTP/1.1\r\nHost: gateway.bench.test\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"X-Twilio-Signature: {validator.compute_signature(url, params)}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        out.append((sid, head.encode() + body))
    return out


async def open_loop(port: int, rate: float, seconds: float, prefix: str) -> dict[str, Any]:
    reqs = _requests(int(rate * seconds), prefix)
    latencies: list[float] = []
    sent_at: dict[str, float] = {}
    errors = 0
    client = RawClient(port)

    async def one(when: float, sid: str, raw: bytes) -> None:
        nonlocal errors
        await asyncio.sleep(max(0.0, when - time.perf_counter()))
        sent_at[sid] = time.time()
        try:
            ok = (await client.request(raw))[0] == 200
        except (OSError, asyncio.IncompleteReadError, ValueError):
            ok = False
        if ok:
            latencies.append(time.perf_counter() - when)  # from the scheduled time
        else:
            errors += 1

    # Warm connections and code paths with a few requests (not measured).
    await asyncio.gather(*(client.request(raw) for _, raw in _requests(20, prefix + "w")))
    start = time.perf_counter() + 0.2
    await asyncio.gather(*(one(start + i / rate, sid, raw) for i, (sid, raw) in enumerate(reqs)))
    elapsed = time.perf_counter() - start
    await client.aclose()
    return {
        "n": len(latencies), "errors": errors, "rps": len(latencies) / elapsed,
        "p50": pct(latencies, 50), "p99": pct(latencies, 99), "sent_at": sent_at,
    }  # fmt: skip


def closed_requests(seconds: float, prefix: str) -> list[tuple[str, bytes]]:
    """More requests than any server here answers in `seconds`: a run that ran out before
    its deadline would divide by the wrong time (closed_loop refuses to)."""
    return _requests(int(seconds * 12_000), prefix)


async def closed_loop(
    port: int,
    concurrency: int,
    seconds: float,
    reqs: list[tuple[str, bytes]],
    measured: dict[str, int],
) -> tuple[float, dict[str, float]]:
    """Requests per second with `concurrency` requests always in flight, and the CPU seconds
    each measured process used meanwhile."""
    gc.collect()
    gc.freeze()  # the prebuilt requests stay out of this process's collections
    done = failed = 0
    index = 0
    client = RawClient(port)

    async def worker() -> None:
        nonlocal done, failed, index
        while time.perf_counter() < deadline and index < len(reqs):
            _, raw = reqs[index]
            index += 1
            if (await client.request(raw))[0] == 200:
                done += 1
            else:
                failed += 1

    before = cpu_snapshot(measured)
    start = time.perf_counter()
    deadline = start + seconds
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    after = cpu_snapshot(measured)
    await client.aclose()
    gc.unfreeze()
    if index >= len(reqs):
        raise RuntimeError(f"closed loop ran out of requests after {elapsed:.1f} s")
    if failed:  # a server shedding load would look fast
        raise RuntimeError(f"{failed} of {done + failed} failed at {concurrency} in flight")
    return done / elapsed, {k: after[k] - before[k] for k in before}


@functools.cache
def _fly() -> dict[str, Any]:
    return tomllib.loads((ROOT / "fly.toml").read_text())


def fly_soft_limit() -> int:
    """The requests Fly's proxy may have in flight on one gateway machine (fly.toml)."""
    return int(_fly()["http_service"]["concurrency"]["soft_limit"])


def fly_sms_replies() -> str:
    """Who sends replies in production (fly.toml's SMS_REPLIES): the bench's default."""
    return str(_fly()["env"]["SMS_REPLIES"])


# --- orchestration ---------------------------------------------------------------------------


async def seed(dsn: str, *, replies: bool = True) -> None:
    import asyncpg

    from shared import agents, channels, migrate, workspaces
    from shared.agents import AgentFields
    from shared.models import BillingMode

    conn = await asyncpg.connect(dsn)
    try:
        await migrate.apply(conn)
        await conn.execute("truncate workspaces cascade")
        ws = await workspaces.create_workspace(
            conn, name="Bench", plan="starter",
            billing_mode=BillingMode.LIVE if replies else BillingMode.INFRA_ONLY,
            credit_balance_minor=10_000_000,
        )  # fmt: skip
        agent = await agents.create_agent(conn, ws.id, AgentFields(name="Sara"))
        await channels.connect_channel(conn, ws.id, "sms", OUR_NUMBER, agent.id)
    finally:
        await conn.close()


async def wait_replies_done(dsn: str) -> None:
    """Let the gateway finish the replies a phase queued (up to 2 minutes)."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        for _ in range(480):
            left = await conn.fetchval(
                "select count(*) from sms_replies where status in ('pending', 'sending')"
            )
            if left == 0:
                return
            await asyncio.sleep(0.25)
    finally:
        await conn.close()


async def send_latencies(dsn: str, sent: list[dict[str, Any]], sent_at: dict[str, float]) -> Any:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "select r.id, m.provider_id from sms_replies r"
            " join messages m on m.id = r.inbound_message_id"
        )
    finally:
        await conn.close()
    inbound_of = {r["id"]: r["provider_id"] for r in rows}
    out = []
    for message in sent:
        query = parse_qs(urlsplit(str(message["status_callback"])).query)
        reply_id = int(query["reply"][0])
        sid = inbound_of.get(reply_id)
        if sid in sent_at:
            out.append(message["at"] - sent_at[sid])
    return out


async def wait_listening(health_port: int) -> None:
    """Until a reply worker's health check says it listens for queued replies (30 s)."""
    for _ in range(300):
        client = RawClient(health_port)
        try:
            if (await client.request(raw_get("/", host="127.0.0.1")))[0] == 200:
                return
        except OSError:
            pass  # not serving yet
        finally:
            await client.aclose()
        await asyncio.sleep(0.1)
    raise RuntimeError("the reply worker did not start listening within 30 s")


async def drop_backlog(dsn: str) -> None:
    """Skip the replies a closed loop queued and no worker has taken yet, then let the ones
    being sent finish. Sending thousands more would take minutes and load the next round's
    servers; the open loops measure the send path."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "update sms_replies set status = 'skipped', error = 'bench: closed-loop backlog',"
            " updated_at = now() where status = 'pending'"
        )
    finally:
        await conn.close()
    await wait_replies_done(dsn)


def cpu_snapshot(measured: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each measured process, Postgres and this load generator."""
    snapshot = {name: cpu_seconds(pid) for name, pid in measured.items()}
    snapshot["postgres"], snapshot["load generator"] = postgres_cpu_seconds(), time.process_time()
    return snapshot


async def main(args: argparse.Namespace, data_dir: Path) -> None:
    procs: list[subprocess.Popen[str]] = []
    try:
        dsn = os.environ.get("DATABASE_URL") or await asyncio.to_thread(start_embedded, data_dir)
        await seed(dsn, replies=args.replies != "none")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        standins, urls = _spawn("standins", env)
        procs.append(standins)
        gateway_env = {
            **env, "DATABASE_URL": dsn, "WASSLA_DATA_DIR": str(data_dir),
            "PUBLIC_BASE_URL": PUBLIC_BASE_URL, "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_API_BASE_URL": urls["twilio"],
            "OPENAI_API_KEY": "bench", "OPENAI_BASE_URL": urls["openai"],
        }  # fmt: skip
        worker: subprocess.Popen[str] | None = None
        if args.replies == "worker":
            gateway_env["SMS_REPLIES"] = "worker"
            with _listen() as free:
                gateway_env["SMS_WORKER_HEALTH_PORT"] = str(free.getsockname()[1])
            worker = await start_reply_worker(gateway_env)
            procs.append(worker)
        gateway, g = _spawn("gateway", gateway_env)
        bare, b = _spawn("bare", env)
        signed_only, so = _spawn("signed", gateway_env)
        procs += [gateway, bare, signed_only]
        gw_url, bare_url = g["port"], b["port"]
        await asyncio.sleep(1.0)

        rate, secs = args.rate, args.seconds
        print(
            f"replies: {args.replies}; open loop: {rate:.0f} req/s for {secs:.0f} s each,"
            f" {os.cpu_count()} CPUs"
        )
        bare_open = await open_loop(bare_url, rate, secs, "B")
        measured = {"gateway": gateway.pid, "stand-ins": standins.pid}
        if worker is not None:
            measured["reply worker"] = worker.pid
        before = cpu_snapshot(measured)
        gw_open = await open_loop(gw_url, rate, secs, "G")
        await wait_replies_done(dsn)
        after = cpu_snapshot(measured)
        cpu_per_request = {k: (after[k] - before[k]) / max(1, gw_open["n"]) for k in before}
        assert standins.stdin is not None and standins.stdout is not None
        standins.stdin.write("dump\n")
        standins.stdin.flush()
        sent = json.loads(standins.stdout.readline())
        to_rest = await send_latencies(dsn, sent, gw_open["sent_at"])
        # The same at a rate the reply pipeline sustains on this machine, so the figure is
        # the path's latency rather than the backlog's age.
        calm = await open_loop(gw_url, args.reply_rate, secs, "R")
        await wait_replies_done(dsn)
        standins.stdin.write("dump\n")
        standins.stdin.flush()
        sent = json.loads(standins.stdout.readline())
        to_rest_calm = await send_latencies(dsn, sent, calm["sent_at"])

        # Closed loops in rounds, each round's gateway against the same round's bare: the
        # bare figure swings by a third between runs on this shared machine.
        closed_secs = args.closed_seconds
        rounds: list[dict[tuple[str, int], float]] = []
        closed_cpu: dict[str, float] = {}
        gw_done = 0.0
        # Bare and signature-only store nothing: they share one request list. The gateway
        # stores every message, so each of its runs gets message ids of its own.
        stateless = closed_requests(closed_secs, "C")
        for n in range(args.closed_rounds):
            figures: dict[tuple[str, int], float] = {}
            for conc in args.concurrency:
                tag = f"{n}c{conc}"
                figures["bare", conc], _ = await closed_loop(
                    bare_url, conc, closed_secs, stateless, {}
                )
                figures["signed", conc], _ = await closed_loop(
                    so["port"], conc, closed_secs, stateless, {}
                )
                if worker is not None:
                    # In fly.toml the reply workers are their own process group on their own
                    # machines; here they would share the gateway's two cores. So the
                    # worker is stopped for this run and a listener here takes its place:
                    # the gateway still queues every reply (row and NOTIFY, read as it
                    # comes). A paused worker would not do: Postgres keeps every
                    # notification a stalled listener has not read.
                    stop_process(worker)
                    procs.remove(worker)
                    async with listening(dsn):
                        figures["queued", conc], _ = await closed_loop(
                            gw_url, conc, closed_secs, closed_requests(closed_secs, f"Q{tag}"),
                            {k: v for k, v in measured.items() if k != "reply worker"},
                        )  # fmt: skip
                    await drop_backlog(dsn)
                    worker = await start_reply_worker(gateway_env)
                    procs.append(worker)
                    measured["reply worker"] = worker.pid
                figures["gateway", conc], cpu = await closed_loop(
                    gw_url, conc, closed_secs, closed_requests(closed_secs, f"D{tag}"), measured
                )
                await drop_backlog(dsn)
                gw_done += figures["gateway", conc] * closed_secs
                for k, v in cpu.items():
                    closed_cpu[k] = closed_cpu.get(k, 0.0) + v
            rounds.append(figures)

        for name, r in (("bare TwiML", bare_open), ("gateway /twilio-sms", gw_open)):
            print(
                f"  {name:<20} ack p50 {r['p50']:6.2f} ms  p99 {r['p99']:6.2f} ms"
                f"  ({r['n']} ok, {r['errors']} errors, {r['rps']:.0f} req/s achieved)"
            )
        for label, values in (
            (f"{rate:.0f}/s", to_rest),
            (f"{args.reply_rate:.0f}/s", to_rest_calm),
        ):
            print(
                f"inbound -> Twilio REST send at {label} (model stand-in, zero delay):"
                f" {len(values)} replies  p50 {pct(values, 50):.1f} ms"
                f"  p95 {pct(values, 95):.1f} ms  p99 {pct(values, 99):.1f} ms"
            )
        print(
            f"  CPU per inbound SMS at {rate:.0f}/s, acknowledgement and reply included: "
            + ", ".join(f"{k} {v * 1000:.2f} ms" for k, v in cpu_per_request.items())
        )
        print(
            f"  gateway ack at {args.reply_rate:.0f}/s: p50 {calm['p50']:.2f} ms"
            f"  p99 {calm['p99']:.2f} ms"
        )
        levels = args.concurrency
        print(
            f"closed loop, {closed_secs:.0f} s each, {args.closed_rounds} rounds; req/s per round"
            f" at {' and '.join(str(c) for c in levels)} requests in flight:"
        )
        labels = {
            "bare": "bare TwiML",
            "gateway": "gateway /twilio-sms",
            "queued": "gateway, replies queued, reply worker elsewhere (as in fly.toml)",
            "signed": "signature check only (ceiling: the check, no database)",
        }
        for key, label in labels.items():
            if (key, levels[0]) in rounds[0]:
                for conc in levels:
                    cells = " ".join(f"{r[key, conc]:6.0f}" for r in rounds)
                    print(f"  {conc:4} in flight: {cells}  {label}")
        total_secs = closed_secs * len(rounds) * len(levels)
        print(
            "  CPU per acknowledgement in the gateway's closed loops (cores used): "
            + ", ".join(
                f"{k} {v / gw_done * 1e6:.0f} us ({v / total_secs:.2f})"
                for k, v in closed_cpu.items()
            )
        )

        def ratio(key: str, conc: int | None = None) -> float:
            """Median over rounds of key/bare: at one level, or each one's best (None)."""

            def best(r: dict[tuple[str, int], float], k: str) -> float:
                return r[k, conc] if conc is not None else max(r[k, c] for c in levels)

            return statistics.median(best(r, key) / best(r, "bare") for r in rounds)

        print(
            f"throughput ratio gateway/bare (each one's best): {ratio('gateway'):.2f}  ("
            + ", ".join(f"at {c} in flight {ratio('gateway', c):.2f}" for c in levels)
            + ")"
        )
        if ("queued", levels[0]) in rounds[0]:
            print(
                f"  (replies queued, reply worker elsewhere: {ratio('queued'):.2f}; "
                + ", ".join(f"at {c} {ratio('queued', c):.2f}" for c in levels)
                + ")"
            )
        print(f"  (signature check only/bare: {ratio('signed'):.2f})")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            stop_process(proc)
        stop_embedded(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", choices=["gateway", "bare", "signed", "standins"])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--concurrency",
        type=lambda text: [int(c) for c in text.split(",")],
        default=[32, fly_soft_limit()],
        help="closed-loop requests in flight, comma-separated (default: 32 and fly.toml's"
        " soft_limit, what Fly's proxy may have in flight on one gateway machine)",
    )
    parser.add_argument("--reply-rate", type=float, default=50.0)
    parser.add_argument("--closed-seconds", type=float, default=4.0)
    parser.add_argument("--closed-rounds", type=int, default=3)
    parser.add_argument(
        "--replies",
        choices=["inline", "worker", "none"],
        default=fly_sms_replies(),
        help="who sends replies: the gateway process, a separate sms_sender process, or "
        "nobody (an infra_only workspace: the message is stored, no reply); default: "
        "fly.toml's SMS_REPLIES",
    )
    cli = parser.parse_args()
    if cli.serve == "gateway":
        serve_gateway()
    elif cli.serve == "bare":
        serve_bare()
    elif cli.serve == "signed":
        serve_signed_only()
    elif cli.serve == "standins":
        serve_standins()
    else:
        directory = Path(tempfile.mkdtemp(prefix="wassla-bench-"))
        directory.chmod(0o755)  # the embedded Postgres may run as its own system user
        asyncio.run(main(cli, directory))
