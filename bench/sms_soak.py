"""Soak the SMS path under faults: texts posted several times each across two gateways and
two SMS senders on one Postgres, one sender SIGKILLed and Postgres restarted mid-run.

    .venv/bin/python bench/sms_soak.py [--texts 1000] [--copies 3] [--rate 40]
        [--later-seconds 5] [--kill-at 8] [--restart-at 14] [--down-seconds 3]
        [--retry-seconds 1] [--model-delay 0.5] [--callback-delay 0.5]
        [--settle-timeout 180] [--supervise]

Processes (each its own): two `python -m webhook_gateway` and two `python -m sms_sender`, with
fly.toml's [env] (WASSLA_ENV=production, SMS_REPLIES=worker, ...) pointed at loopback; one
embedded Postgres (a temp WASSLA_DATA_DIR) that this process owns, stops and starts again on
the same data directory and socket; the OpenAI and Twilio REST stand-ins (tests/standins/, real
wire format) in a child process, which also posts Twilio's signed status callbacks (`sent`,
then `delivered`) for every message it accepted, to the gateways in turn; this process, the
load generator.

Each text (a real-shaped MessageSid, SM + 32 hex; 500 contacts) is posted `--copies` times:
twice at once to the two gateways, the rest `--later-seconds` later (Twilio's duplicates and
retries). A post answered 5xx or not answered at all is re-posted to the other gateway a
second later until it gets 200, as Twilio's retry would be. Status callbacks are retried the
same way (Twilio does not retry status callbacks: without this, a callback posted while
Postgres is down would simply be lost and its reply never charged).

Prints: messages stored, replies sent (rows and the stand-in's sends), charges, doubles,
losses, how replies ended, and inbound -> sent latency p50/p95/p99 (inbound: the text's first
post; sent: the Twilio stand-in's receipt of the REST create).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from loadgen import RawClient, pct, raw_get, stop_process  # noqa: E402  (bench/, beside this)
from sms_ack import (  # noqa: E402
    ACCOUNT_SID,
    AUTH_TOKEN,
    PUBLIC_BASE_URL,
    _listen,
    _requests,
    seed,
)

from shared.devdb import start_embedded, stop_embedded  # noqa: E402

JWT_SECRET = "bench-jwt-secret-0123456789abcdef0123456789abcdef"
MODEL_REPLY = "Thanks, we are open 9 to 5."
SETTLED = ("sent", "failed", "unknown", "skipped")


# --- the stand-ins' child process ------------------------------------------------------------


def serve_standins(model_delay: float, callback_delay: float) -> None:
    """The OpenAI and Twilio REST stand-ins, and Twilio's status callbacks for each message
    created. Reads commands on stdin: `gateways P1,P2` (where callbacks go), `dump`."""
    from tests.standins.openai_api import ChatScript, OpenAIStandIn
    from tests.standins.twilio_api import TwilioStandIn

    class DelayedOpenAI(OpenAIStandIn):
        def _next_chat(self) -> ChatScript:
            return ChatScript(self.default_reply, first_token_delay=model_delay)

    openai = DelayedOpenAI(default_reply=MODEL_REPLY).start()
    twilio = TwilioStandIn(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN).start()
    callbacks: Counter[str] = Counter()
    ports: list[int] = []
    print(json.dumps({"openai": openai.base_url, "twilio": twilio.base_url}), flush=True)

    def post_callbacks() -> None:
        asyncio.run(_post_callbacks(twilio, ports, callback_delay, callbacks))

    thread: threading.Thread | None = None
    for line in sys.stdin:
        command = line.strip()
        if command.startswith("gateways "):
            ports.extend(int(p) for p in command.split(" ", 1)[1].split(","))
            thread = threading.Thread(target=post_callbacks, daemon=True)
            thread.start()
        elif command == "dump":
            with twilio._lock:
                messages = list(twilio.messages)
            print(json.dumps({"messages": messages, "callbacks": dict(callbacks)}), flush=True)
        elif command == "busy":  # status callbacks not yet answered 200 (or given up)
            print(json.dumps({"callbacks": callbacks["in flight"]}), flush=True)
    openai.stop()
    twilio.stop()


async def _post_callbacks(
    twilio: Any, ports: list[int], delay: float, counts: Counter[str]
) -> None:
    """For every message the stand-in accepted: `sent` then `delivered`, signed, each posted
    until a gateway answers 200 (a 5xx or no answer: the other gateway, a second later)."""
    import httpx
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(AUTH_TOKEN)
    turn = 0
    # At most 32 posts at once, queued here: httpx's own pool queue slows to a crawl with
    # a thousand requests waiting in it.
    slots = asyncio.Semaphore(32)
    tasks: set[asyncio.Task[None]] = set()

    async def deliver(http: httpx.AsyncClient, message: dict[str, Any]) -> None:
        nonlocal turn
        await asyncio.sleep(delay)
        url = str(message["status_callback"])
        for status in ("sent", "delivered"):
            params = {
                "MessageSid": message["sid"], "SmsSid": message["sid"],
                "AccountSid": ACCOUNT_SID, "From": str(message["from"]),
                "To": str(message["to"]), "MessageStatus": status, "SmsStatus": status,
                "ApiVersion": "2010-04-01",
            }  # fmt: skip
            headers = {"X-Twilio-Signature": validator.compute_signature(url, params)}
            path = url.removeprefix(PUBLIC_BASE_URL)
            for _ in range(300):
                port = ports[turn % len(ports)]
                turn += 1
                try:
                    async with slots:
                        answer = await http.post(
                            f"http://127.0.0.1:{port}{path}", data=params, headers=headers
                        )
                    if answer.status_code == 200:
                        counts[f"{status} 200"] += 1
                        break
                    counts[f"{status} {answer.status_code}"] += 1
                except httpx.TransportError as exc:
                    counts[f"{status} no answer ({type(exc).__name__})"] += 1
                await asyncio.sleep(1.0)
            else:
                counts[f"{status} given up"] += 1

    seen = 0
    # Twilio's callbacks wait for a connection as long as it takes (no pool timeout).
    timeout = httpx.Timeout(15, pool=None)
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as http:
        while True:
            new = twilio.messages[seen:]
            seen += len(new)
            for message in new:
                task = asyncio.create_task(deliver(http, message))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            counts["in flight"] = len(tasks)
            await asyncio.sleep(0.05)


# --- processes -------------------------------------------------------------------------------


def fly_env() -> dict[str, str]:
    """fly.toml's [env]: the production settings every process of the app gets."""
    fly = tomllib.loads((ROOT / "fly.toml").read_text())
    return {k: str(v) for k, v in fly["env"].items()}


def free_port() -> int:
    with _listen() as sock:
        port: int = sock.getsockname()[1]
        return port


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, *args], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )


def spawn_standins(
    env: dict[str, str], model_delay: float, callback_delay: float
) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", "standins", "--model-delay", str(model_delay),
         "--callback-delay", str(callback_delay)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


def standins_command(proc: subprocess.Popen[str], command: str) -> dict[str, Any] | None:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(command + "\n")
    proc.stdin.flush()
    if command not in ("dump", "busy"):
        return None
    answer: dict[str, Any] = json.loads(proc.stdout.readline())
    return answer


async def wait_healthy(port: int, path: str, proc: subprocess.Popen[bytes], what: str) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        client = RawClient(port)
        try:
            if (await client.request(raw_get(path, host="127.0.0.1")))[0] == 200:
                return
        except (OSError, asyncio.IncompleteReadError):
            pass  # not serving yet
        finally:
            await client.aclose()
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{what} not healthy within 30 s")


def restart_postgres(data_dir: Path, down_seconds: float) -> tuple[float, float]:
    """Stop the embedded server (pg_ctl stop, fast: every connection cut) and start it again
    on the same data directory and socket after `down_seconds`; (stopped, started) times."""
    from shared.devdb import _server

    server = _server((data_dir / "pg").resolve())
    uri = server.get_uri()
    server.stop()
    stopped = time.time()
    time.sleep(down_seconds)
    with server._lock:
        server.ensure_postgres_running()
    if server.get_uri() != uri:
        raise RuntimeError(f"Postgres came back elsewhere: {server.get_uri()} (was {uri})")
    return stopped, time.time()


@dataclass
class Child:
    """A gateway or a sender: how to start it again (as Fly restarts a failed machine)."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    port: int
    health_path: str
    proc: subprocess.Popen[bytes] | None = None
    killed: bool = False  # by the bench: stays dead

    def start(self) -> None:
        self.proc = spawn(self.args, self.env, self.log)


def last_error(log: Path) -> str:
    """The last traceback line or error event in a child's log."""
    lines = log.read_text(errors="replace").splitlines()
    for line in reversed(lines):
        if line.startswith(("asyncpg.", "Traceback")) or '"level": "ERROR"' in line:
            return line[:300]
    return lines[-1][:300] if lines else ""


def log_counts(logs: Path) -> dict[str, float]:
    """Events in the children's JSON logs that the rows no longer show."""
    counts: Counter[str] = Counter()
    for log in logs.glob("*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if '"sms.reply_outcome_unknown"' in line:
                counts["unknown_logged"] += 1
            elif '"sms.reply_resolved_by_callback"' in line and '"unknown"' in line:
                counts["resolved_unknown"] += 1
            elif '"task_failed"' in line:
                counts["task_failed"] += 1
    return {k: float(counts[k]) for k in ("unknown_logged", "resolved_unknown", "task_failed")}


async def supervise(
    children: list[Child], restart: bool, exits: list[tuple[str, float, int, str]]
) -> None:
    """Note every process that exits without being killed; with `restart`, start it again."""
    while True:
        await asyncio.sleep(0.5)
        for child in children:
            if child.killed or child.proc is None or child.proc.poll() is None:
                continue
            exits.append((child.name, time.time(), child.proc.returncode, last_error(child.log)))
            child.proc = None
            if restart:
                await asyncio.sleep(1.0)
                child.start()


# --- load ------------------------------------------------------------------------------------


class Load:
    """Texts posted `copies` times across the gateways, each post retried until 200."""

    def __init__(self, ports: list[int], retry_seconds: float) -> None:
        self.clients = [RawClient(p) for p in ports]
        self.retry_seconds = retry_seconds
        self.first_post: dict[str, float] = {}
        self.acked: set[str] = set()
        self.outcomes: Counter[str] = Counter()
        self.ack_latencies: list[float] = []
        self.given_up = 0

    async def post(self, when: float, sid: str, raw: bytes, gateway: int) -> None:
        await asyncio.sleep(max(0.0, when - time.perf_counter()))
        self.first_post.setdefault(sid, time.time())
        for attempt in range(120):
            client = self.clients[(gateway + attempt) % len(self.clients)]
            started = time.perf_counter()
            try:
                status, _ = await asyncio.wait_for(client.request(raw), 15)  # Twilio's 15 s
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
                status = 0  # that connection is dropped; the next attempt opens another
            self.outcomes[str(status) if status else "no answer"] += 1
            if status == 200:
                self.acked.add(sid)
                self.ack_latencies.append(time.perf_counter() - started)
                return
            await asyncio.sleep(self.retry_seconds)
        self.given_up += 1

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()


# --- figures ---------------------------------------------------------------------------------


async def db_figures(dsn: str) -> dict[str, Any]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        inbound = await conn.fetch(
            "select id, provider_id from messages where direction = 'inbound'"
        )
        replies = await conn.fetch(
            "select r.id, r.status, r.error, r.message_sid, m.provider_id as inbound_sid"
            " from sms_replies r join messages m on m.id = r.inbound_message_id"
        )
        outbound = await conn.fetchval("select count(*) from messages where direction = 'outbound'")
        charges = await conn.fetch(
            "select reference, quantity from charges where kind = 'outbound_messages'"
        )
        last = await conn.fetchrow(
            "select extract(epoch from (select max(updated_at) from sms_replies)) as reply,"
            " extract(epoch from (select max(created_at) from charges)) as charge"
        )
    finally:
        await conn.close()
    assert last is not None
    return {
        "inbound": inbound, "replies": replies, "outbound": outbound, "charges": charges,
        "last_reply": float(last["reply"] or 0), "last_charge": float(last["charge"] or 0),
    }  # fmt: skip


async def wait_settled(
    dsn: str, expected_texts: int, within: float, standins: subprocess.Popen[str]
) -> float:
    """Until every acknowledged text is stored, no reply is pending or sending, every status
    callback was answered and nothing has moved for 3 s, or `within` s; the seconds waited."""
    import asyncpg

    start = time.monotonic()
    last: object = None
    stable_since = time.monotonic()
    while time.monotonic() - start < within:
        try:
            conn = await asyncpg.connect(dsn)
            try:
                row = await conn.fetchrow(
                    "select (select count(*) from messages where direction = 'inbound') as inbound,"
                    " (select count(*) from sms_replies where status in ('pending', 'sending'))"
                    " as open, (select count(*) from charges) as charges"
                )
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresError):
            await asyncio.sleep(0.5)
            continue
        assert row is not None
        busy = standins_command(standins, "busy")
        assert busy is not None
        figures = (row["inbound"], row["open"], row["charges"], busy["callbacks"])
        if figures != last:
            last, stable_since = figures, time.monotonic()
        stable_for = 3.0 if row["inbound"] >= expected_texts else 15.0
        quiet = row["open"] == 0 and busy["callbacks"] == 0
        if quiet and time.monotonic() - stable_since > stable_for:
            break
        await asyncio.sleep(0.5)
    return time.monotonic() - start


def report(
    args: argparse.Namespace,
    load: Load,
    db: dict[str, Any],
    dump: dict[str, Any],
    events: dict[str, float],
    waited: float,
) -> None:
    sent = dump["messages"]
    stored = Counter(r["provider_id"] for r in db["inbound"])
    reply_of_id = {r["id"]: r for r in db["replies"]}
    replies_per_inbound = Counter(r["inbound_sid"] for r in db["replies"])
    status = Counter(r["status"] for r in db["replies"])
    sends_per_inbound: Counter[str] = Counter()
    unmatched_sends = 0
    latencies: list[float] = []
    for message in sent:
        reply_id = int(str(message["status_callback"]).split("reply=", 1)[1].split("&", 1)[0])
        reply = reply_of_id.get(reply_id)
        if reply is None:
            unmatched_sends += 1
            continue
        sid = reply["inbound_sid"]
        sends_per_inbound[sid] += 1
        if sends_per_inbound[sid] == 1 and sid in load.first_post:
            latencies.append(message["at"] - load.first_post[sid])
    charges_per_sid = Counter(c["reference"] for c in db["charges"])
    stand_in_sids = {m["sid"] for m in sent}

    double_stored = sum(1 for n in stored.values() if n > 1)
    double_replies = sum(1 for n in replies_per_inbound.values() if n > 1)
    double_sends = sum(1 for n in sends_per_inbound.values() if n > 1)
    double_charges = sum(1 for n in charges_per_sid.values() if n > 1)
    lost_acked = sorted(load.acked - set(stored))
    no_reply_row = sorted(set(stored) - set(replies_per_inbound))
    unsettled = [r for r in db["replies"] if r["status"] not in SETTLED]
    no_reason = [r for r in db["replies"] if r["status"] != "sent" and not r["error"]]
    sent_not_charged = [
        r
        for r in db["replies"]
        if r["status"] == "sent" and r["message_sid"] not in charges_per_sid
    ]
    charged_unknown = [s for s in charges_per_sid if s not in stand_in_sids]

    t0 = events["load_start"]
    print(
        f"texts {args.texts} x {args.copies} posts at {args.rate:g} texts/s; 2 gateways, 2 senders;"
        f" model delay {args.model_delay:g} s; lease_seconds as the senders' settings"
        f" ({events.get('lease_seconds', float('nan')):g} s)"
    )
    print(
        f"faults: sender {events['killed_pid']:.0f} SIGKILLed at +{events['killed'] - t0:.1f} s"
        f" (it held {events['killed_held']:.0f} claims); Postgres stopped at"
        f" +{events['pg_stopped'] - t0:.1f} s, ready again at +{events['pg_started'] - t0:.1f} s"
    )
    print(
        f"posts: {dict(load.outcomes)}; texts acknowledged {len(load.acked)}/{args.texts},"
        f" given up {load.given_up}; ack p50 {pct(load.ack_latencies, 50):.1f} ms"
        f" p99 {pct(load.ack_latencies, 99):.1f} ms"
    )
    print(f"status callbacks: {dump['callbacks']}")
    print(
        f"settled {waited:.1f} s after the last post (+{events['last_post'] - t0:.1f} s); last"
        f" reply row change at +{db['last_reply'] - t0:.1f} s, last charge at"
        f" +{db['last_charge'] - t0:.1f} s"
    )
    print(
        f"messages stored {len(stored)}  replies sent {status['sent']} (stand-in sends"
        f" {len(sent)}, outbound messages {db['outbound']})  charges {len(db['charges'])}"
        f" ({sum(c['quantity'] for c in db['charges'])} segments)"
    )
    print(f"replies by status: {dict(status)}")
    ended = Counter((r["status"], r["error"]) for r in db["replies"] if r["status"] != "sent")
    for (state, error), n in ended.most_common():
        print(f"  {n} {state}: {error}")
    print(
        f"doubles: {double_stored + double_replies + double_sends + double_charges}"
        f" (MessageSid stored twice {double_stored}, two reply rows {double_replies},"
        f" sent twice to the stand-in {double_sends}, charged twice {double_charges};"
        f" sends matching no reply {unmatched_sends}, charges for no stand-in send"
        f" {len(charged_unknown)})"
    )
    print(
        f"losses: {len(lost_acked) + len(no_reply_row) + len(unsettled) + len(no_reason)}"
        f" (acknowledged, not stored {len(lost_acked)}; stored, no reply row"
        f" {len(no_reply_row)}; unsettled {len(unsettled)}; not sent, no reason"
        f" {len(no_reason)}); sent but not charged {len(sent_not_charged)}"
    )
    slow = sum(1 for v in latencies if v > 10)
    print(
        f"inbound -> sent: {len(latencies)} replies  p50 {pct(latencies, 50) / 1000:.2f} s"
        f"  p95 {pct(latencies, 95) / 1000:.2f} s  p99 {pct(latencies, 99) / 1000:.2f} s"
        f"  max {max(latencies, default=float('nan')):.2f} s  (over 10 s: {slow})"
    )
    print(
        f"from the logs: {events['unknown_logged']:.0f} replies marked unknown (process lost or"
        f" answer cut mid-send), {events['resolved_unknown']:.0f} of them resolved to sent by"
        f" Twilio's status callback; {events['task_failed']:.0f} task_failed errors"
    )
    load_avg = os.getloadavg()
    print(
        f"machine: {os.cpu_count()} CPUs, load average {load_avg[0]:.2f} {load_avg[1]:.2f}"
        f" {load_avg[2]:.2f} (1/5/15 min) at the end; started at {events['load_avg_start']:.2f}"
    )


# --- orchestration ---------------------------------------------------------------------------


async def main(args: argparse.Namespace, data_dir: Path) -> None:
    logs = data_dir / "logs"
    logs.mkdir()
    procs: list[subprocess.Popen[Any]] = []
    children: list[Child] = []
    exits: list[tuple[str, float, int, str]] = []
    events: dict[str, float] = {"load_avg_start": os.getloadavg()[0]}
    try:
        dsn = await asyncio.to_thread(start_embedded, data_dir)
        await seed(dsn)
        base = {**os.environ, "PYTHONPATH": str(ROOT)}
        standins, urls = spawn_standins(base, args.model_delay, args.callback_delay)
        procs.append(standins)
        env = {
            **base, **fly_env(), "HOST": "127.0.0.1", "DATABASE_URL": dsn,
            "WASSLA_DATA_DIR": str(data_dir), "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
            "WASSLA_JWT_SECRET": JWT_SECRET, "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_API_BASE_URL": urls["twilio"],
            "OPENAI_API_KEY": "bench", "OPENAI_BASE_URL": urls["openai"],
            "RECORDINGS_BACKEND": "local",  # the SMS path records nothing; no S3 here
        }  # fmt: skip
        children = [
            Child(f"sender {n}", ["-m", "sms_sender"], {**env, "SMS_WORKER_HEALTH_PORT": str(p)},
                  logs / f"sender{n}.log", p, "/")
            for n, p in enumerate([free_port(), free_port()])
        ] + [
            Child(f"gateway {n}", ["-m", "webhook_gateway"],
                  {**env, "PORT": str(p), "METRICS_PORT": str(free_port())},
                  logs / f"gateway{n}.log", p, "/healthz")
            for n, p in enumerate([free_port(), free_port()])
        ]  # fmt: skip
        for child in children:
            child.start()
        for child in children:
            assert child.proc is not None
            await wait_healthy(child.port, child.health_path, child.proc, child.name)
        senders, gateways = children[:2], children[2:]
        gateway_ports = [g.port for g in gateways]
        standins_command(standins, "gateways " + ",".join(map(str, gateway_ports)))
        from shared.settings import SmsSettings

        events["lease_seconds"] = float(env.get("SMS_LEASE_SECONDS") or SmsSettings().lease_seconds)

        requests = _requests(args.texts, f"soak{time.time_ns()}")
        load = Load(gateway_ports, args.retry_seconds)
        start = time.perf_counter() + 0.2
        events["load_start"] = time.time() + 0.2
        posts = []
        for i, (sid, raw) in enumerate(requests):
            when = start + i / args.rate
            for copy in range(args.copies):
                later = args.later_seconds * (copy - 1) if copy >= 2 else 0.0
                posts.append(load.post(when + later, sid, raw, (i + copy) % 2))

        async def kill_sender() -> None:
            await asyncio.sleep(max(0.0, start + args.kill_at - time.perf_counter()))
            doomed = senders[0]
            import asyncpg

            conn = await asyncpg.connect(dsn)
            try:
                held = await conn.fetchval(
                    "select count(*) from sms_replies where status in ('pending', 'sending')"
                    " and claim is not null and lease_until > now()"
                )
            finally:
                await conn.close()
            assert doomed.proc is not None
            doomed.killed = True
            os.kill(doomed.proc.pid, signal.SIGKILL)
            events["killed"], events["killed_pid"] = time.time(), doomed.proc.pid
            events["killed_held"] = float(held)  # held by either sender, just before

        async def restart() -> None:
            await asyncio.sleep(max(0.0, start + args.restart_at - time.perf_counter()))
            events["pg_stopped"], events["pg_started"] = await asyncio.to_thread(
                restart_postgres, data_dir, args.down_seconds
            )

        watch = asyncio.create_task(supervise(children, args.supervise, exits))
        await asyncio.gather(*posts, kill_sender(), restart())
        await load.aclose()
        events["last_post"] = time.time()
        waited = await wait_settled(dsn, len(load.acked), args.settle_timeout, standins)
        watch.cancel()
        dump = standins_command(standins, "dump")
        assert dump is not None
        events.update(log_counts(logs))
        report(args, load, await db_figures(dsn), dump, events, waited)
        for name, at, code, last in exits:
            restarted = "restarted (--supervise)" if args.supervise else "not restarted"
            print(f"{name} exited by itself at +{at - events['load_start']:.1f} s with {code},"
                  f" {restarted}; its last error: {last}")  # fmt: skip
    finally:
        for proc in [*procs, *(c.proc for c in children if c.proc is not None)]:
            if proc.poll() is None:
                proc.terminate()
        for proc in [*procs, *(c.proc for c in children if c.proc is not None)]:
            stop_process(proc)
        stop_embedded(data_dir)
        if os.environ.get("SOAK_KEEP_LOGS"):
            print(f"logs kept in {logs}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", choices=["standins"])
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--copies", type=int, default=3, help="posts of each text")
    parser.add_argument("--rate", type=float, default=40.0, help="new texts per second")
    parser.add_argument(
        "--later-seconds", type=float, default=5.0, help="delay of the third and later copies"
    )
    parser.add_argument("--retry-seconds", type=float, default=1.0)
    parser.add_argument("--kill-at", type=float, default=8.0, help="SIGKILL a sender (s in)")
    parser.add_argument("--restart-at", type=float, default=14.0, help="stop Postgres (s in)")
    parser.add_argument("--down-seconds", type=float, default=3.0)
    parser.add_argument("--model-delay", type=float, default=0.5, help="model stand-in's")
    parser.add_argument("--callback-delay", type=float, default=0.5)
    parser.add_argument("--settle-timeout", type=float, default=180.0)
    parser.add_argument(
        "--supervise",
        action="store_true",
        help="start a gateway or sender that exits by itself again a second later (as Fly"
        " restarts a failed machine); the SIGKILLed sender stays dead",
    )
    return parser.parse_args()


if __name__ == "__main__":
    cli = parse()
    if cli.serve == "standins":
        serve_standins(cli.model_delay, cli.callback_delay)
    else:
        directory = Path(tempfile.mkdtemp(prefix="wassla-soak-"))
        directory.chmod(0o755)  # the embedded Postgres may run as its own system user
        asyncio.run(main(cli, directory))
