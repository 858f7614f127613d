"""Voice worker bench: turn overhead, barge-in, and concurrent calls per worker.

Real livekit-server, real `python -m worker start`, embedded Postgres, and the OpenAI
stand-in with fixed latencies (STT, LLM first token, TTS first byte). Callers are SIP-kind
LiveKit participants speaking espeak-ng audio; every figure is measured on the caller's side.

    .venv/bin/python bench/worker_latency.py [--turns 20] [--barge-ins 15] [--calls 10,25]

Figures:
  turn overhead = caller's end of speech (the last voiced 10 ms frame leaving the caller, not
                  the end of espeak's ~0.3 s trailing silence) -> agent's first audio frame
                  heard by the caller, minus the endpointing delay and the providers'
                  latencies (the ideal critical path, printed), with preemptive generation
                  off so the path is sequential; p50/p95 (target p95 < 60 ms). It includes
                  WebRTC both ways (~45 ms each way on loopback) and the Silero VAD's decay
                  after speech. The worker's own per-stage figures (its call.turn_metrics
                  log lines) are printed beside it, and the end-to-end time with preemptive
                  generation on.
  barge-in      = caller's speech onset over a long reply -> the agent's audio stopping,
                  p50/p95 (target p95 < 300 ms), for the configured interruption threshold.
  concurrency   = N calls at once on one worker: turn overhead p95 and worker memory (PSS of
                  the worker's whole process tree) per call (targets: >= 25 calls, < 60 MB),
                  and the CPU (cores) the worker, the callers and livekit-server used while
                  talking: the callers are real WebRTC participants on the same 2 cores.

    --sections turns,barge-in,concurrency picks figures; --calls/--executors the load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from livekit import api, rtc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared import migrate  # noqa: E402
from shared.devdb import start_embedded, stop_embedded  # noqa: E402
from shared.settings import Settings  # noqa: E402
from tests.standins.openai_api import ChatScript, OpenAIStandIn  # noqa: E402
from tests.support import factories  # noqa: E402
from tests.support.audio import espeak_pcm, rms  # noqa: E402
from tests.support.livekit_server import LiveKitServer  # noqa: E402
from tests.support.processes import die_with_parent, free_port  # noqa: E402
from tests.support.worker_process import WorkerProcess, start_worker, worker_env  # noqa: E402
from tests.worker.phone import SAMPLE_RATE, SAMPLES_PER_FRAME, Phone, sip_token  # noqa: E402

DEFAULTS = Settings()  # the worker's defaults, where --worker-env leaves a knob alone
NUMBER = "+15557654321"
AGENT = "wassla-voice-bench"
STT_S, LLM_TTFT_S, TTS_TTFB_S = 0.10, 0.15, 0.10
VAD_SILENCE_S, ENDPOINT_S = 0.55, 0.50


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def ms(value: float) -> str:
    return f"{value * 1000:7.1f} ms"


def tree_pss_mb(root_pid: int) -> float:
    """Proportional set size of a process and all its descendants (shared pages split)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total_kb, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total_kb += int(line.split()[1])
        except OSError:
            pass
    return total_kb / 1024


def tree_cpu_seconds(root_pid: int) -> float:
    """User + system CPU seconds of a process and its live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    total, stack = 0.0, [root_pid]
    while stack:
        pid = stack.pop()
        total += times.get(pid, 0.0)
        stack.extend(child for child, parent in parents.items() if parent == pid)
    return total


def serve_standin(port_file: str) -> None:
    """Child-process entry: the stand-in with fixed latencies, away from the callers' GIL."""
    standin = OpenAIStandIn(stt_delay=STT_S, tts_first_byte_delay=TTS_TTFB_S)
    standin.default_reply = "We open at nine."
    standin.default_transcript = "What time do you open tomorrow?"
    fixed_latency(standin)
    standin.start()
    Path(port_file).write_text(standin.base_url)
    while True:
        time.sleep(3600)


def fixed_latency(standin: OpenAIStandIn) -> None:
    original = standin._next_chat

    def next_chat() -> ChatScript:
        script = original()
        script.first_token_delay = LLM_TTFT_S
        return script

    standin._next_chat = next_chat  # type: ignore[method-assign]


def start_standin_process() -> tuple[subprocess.Popen[bytes], str]:
    port_file = Path(tempfile.mkstemp(prefix="standin-")[1])
    port_file.write_text("")
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve-standin", str(port_file)],
        preexec_fn=die_with_parent,
    )
    deadline = time.monotonic() + 30
    while not port_file.read_text():
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError("stand-in process did not start")
        time.sleep(0.05)
    return process, port_file.read_text()


@dataclass
class Bench:
    livekit: LiveKitServer
    standin: OpenAIStandIn  # in-process: scripted replies (barge-in)
    remote_standin_url: str  # child process: fixed short replies (turns, concurrency)
    remote_standin_pid: int
    dsn: str
    data_dir: Path
    worker_env: dict[str, str]  # --worker-env: settings every worker of this run gets

    def worker(self, *, remote: bool = True, **extra: str) -> WorkerProcess:
        port = free_port()
        env = worker_env(
            livekit=self.livekit,
            openai_base_url=self.remote_standin_url if remote else self.standin.base_url,
            pg_dsn=self.dsn,
            data_dir=self.data_dir,
            s3_endpoint="http://127.0.0.1:9",
            health_port=port,
            extra={
                "WORKER_AGENT_NAME": AGENT,
                "RECORDINGS_BACKEND": "local",
                "WORKER_ENDPOINTING_MIN_DELAY": str(ENDPOINT_S),
                "WORKER_VAD_MIN_SILENCE": str(VAD_SILENCE_S),
                "WORKER_MAX_CALLS": "60",
                "WORKER_NUM_IDLE_PROCESSES": "3",
                "LIVEKIT_AGENTS_PRELOAD_LOCAL_INFERENCE": "0",
                **extra,
                **self.worker_env,
            },
        )
        return start_worker(env, port, new_session=True)

    async def dial(self) -> Phone:
        room = f"bench-{uuid.uuid4().hex[:10]}"
        token = sip_token(
            api_key=self.livekit.api_key,
            api_secret=self.livekit.api_secret,
            room=room,
            identity=f"sip_{uuid.uuid4().hex[:6]}",
            caller_number="+15550001111",
            called_number=NUMBER,
            call_sid="CA" + uuid.uuid4().hex,
            agent_name=AGENT,
        )
        phone = Phone(url=self.livekit.url, token=token)
        await phone.dial()
        greeted = await phone.wait_agent_speaking(after=0.0, within=60)
        await phone.wait_agent_quiet(after=greeted, quiet=0.4, within=30)
        return phone


def _voiced_frames(pcm: bytes, threshold: float = 100.0) -> list[int]:
    """Indices of the whole 10 ms frames of `pcm` whose RMS reaches `threshold`."""
    frame_bytes = SAMPLES_PER_FRAME * 2
    frames = len(pcm) // frame_bytes
    return [
        i for i in range(frames) if rms(pcm[i * frame_bytes : (i + 1) * frame_bytes]) >= threshold
    ]


def trailing_silence(pcm: bytes) -> float:
    """Seconds of silence after the last voiced 10 ms frame (espeak-ng pads ~0.3 s)."""
    voiced = _voiced_frames(pcm)
    if not voiced:
        return 0.0
    return (len(pcm) // 2 - (voiced[-1] + 1) * SAMPLES_PER_FRAME) / SAMPLE_RATE


def leading_silence(pcm: bytes) -> float:
    """Seconds of silence before the first voiced 10 ms frame."""
    voiced = _voiced_frames(pcm)
    return voiced[0] * SAMPLES_PER_FRAME / SAMPLE_RATE if voiced else 0.0


async def transport_round_trip(bench: Bench, utterance: bytes, count: int) -> list[float]:
    """The baseline the worker cannot beat: caller -> server -> an echo participant -> server
    -> caller, with the worker's own frame sizes (its input stream's rate and 50 ms frames,
    an output AudioSource with the same queue), and no processing in between."""
    room = f"echo-{uuid.uuid4().hex[:10]}"
    token = sip_token(
        api_key=bench.livekit.api_key, api_secret=bench.livekit.api_secret, room=room,
        identity="caller", caller_number="+15550001111", called_number=NUMBER,
        call_sid="CA" + uuid.uuid4().hex, agent_name=None,
    )  # fmt: skip
    rate = int(bench.worker_env.get("WORKER_INPUT_SAMPLE_RATE", DEFAULTS.worker.input_sample_rate))
    echo = rtc.Room()
    source = rtc.AudioSource(rate, 1, queue_size_ms=200)  # as the framework's audio output
    tasks: list[asyncio.Task[None]] = []

    async def mirror(track: rtc.Track) -> None:
        stream = rtc.AudioStream.from_track(
            track=track, sample_rate=rate, num_channels=1, frame_size_ms=50
        )
        async for event in stream:
            await source.capture_frame(event.frame)

    def on_track(track: rtc.Track, *_: object) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            tasks.append(asyncio.ensure_future(mirror(track)))

    echo.on("track_subscribed", on_track)
    echo_token = (
        api.AccessToken(bench.livekit.api_key, bench.livekit.api_secret)
        .with_identity("echo")
        .with_grants(api.VideoGrants(room_join=True, room=room))
        .to_jwt()
    )
    await echo.connect(bench.livekit.url, echo_token)
    track = rtc.LocalAudioTrack.create_audio_track("echo", source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    await echo.local_participant.publish_track(track, options)
    phone = Phone(url=bench.livekit.url, token=token)
    await phone.dial()
    await asyncio.sleep(1.0)
    voiced_from = leading_silence(utterance)
    samples = []
    try:
        for _ in range(count):
            onset = phone.say(utterance) + voiced_from
            heard = await phone.wait_agent_speaking(after=onset, within=10)
            samples.append(heard - onset)
            await phone.finish_saying()
            await phone.wait_agent_quiet(after=heard, quiet=0.4, within=10)
    finally:
        await phone.hang_up()
        for task in tasks:
            task.cancel()
        await echo.disconnect()
    return samples


async def one_turn(phone: Phone, utterance: bytes) -> float:
    """Seconds from the caller's end of speech to the agent's first audible frame."""
    phone.say(utterance)
    # The end of speech is the last voiced frame leaving the caller, not the end of the
    # clip's trailing silence.
    ended = await phone.finish_saying(within=30) - trailing_silence(utterance)
    first = await phone.wait_agent_speaking(after=ended, within=30)
    await phone.wait_agent_quiet(after=first, quiet=0.4, within=30)
    return first - ended


async def turn_overhead(
    bench: Bench, turns: int, utterance: bytes, preemptive: bool
) -> list[float]:
    worker = bench.worker(WORKER_PREEMPTIVE_GENERATION=str(preemptive).lower())
    try:
        phone = await bench.dial()
        samples = [await one_turn(phone, utterance) for _ in range(turns)]
        await phone.hang_up()
        await worker.wait_idle()
        print_stage_timings(worker)
        return samples
    finally:
        worker.stop()


def print_stage_timings(worker: WorkerProcess) -> None:
    """The worker's own per-turn figures (its `call.turn_metrics` log lines), p50/p95."""
    stages: dict[str, list[float]] = {}
    for line in worker.log().splitlines():
        if '"call.turn_metrics"' not in line:
            continue
        record = json.loads(line)
        for key, value in record.items():
            if key.endswith(("_delay", "_ttft", "_ttfb", "_latency")):
                stages.setdefault(f"{record['role']}.{key}", []).append(float(value))
    for name, values in sorted(stages.items()):
        print(f"    worker {name:34s} p50 {ms(pct(values, 50))}  p95 {ms(pct(values, 95))}")


async def barge_in(
    bench: Bench, count: int, utterance: bytes, interrupt: bytes, min_duration: float
) -> list[float]:
    worker = bench.worker(remote=False, WORKER_INTERRUPTION_MIN_DURATION=str(min_duration))
    long_reply = " ".join(["Our store is open every day from nine to five."] * 10)
    try:
        phone = await bench.dial()
        samples = []
        for _ in range(count):
            bench.standin.script_chat(long_reply, "Sure.")
            phone.say(utterance)
            ended = await phone.finish_saying()
            speaking = await phone.wait_agent_speaking(after=ended, within=30)
            await asyncio.sleep(1.0)
            onset = phone.say(interrupt)
            await phone.finish_saying()
            deadline = time.monotonic() + 20
            stopped = None
            while stopped is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                stopped = phone.agent_stopped_after(onset)
            if stopped is None:
                raise RuntimeError("the agent never stopped")
            samples.append(max(0.0, stopped - onset))
            assert speaking < onset
            reply_at = await phone.wait_agent_speaking(after=stopped + 0.25, within=30)
            await phone.wait_agent_quiet(after=reply_at, quiet=0.4, within=30)
        await phone.hang_up()
        return samples
    finally:
        worker.stop()


async def concurrency(
    bench: Bench, n: int, utterance: bytes, turns: int, executor: str
) -> tuple[list[float], float, float]:
    worker = bench.worker(
        WORKER_PREEMPTIVE_GENERATION="false",
        WORKER_JOB_EXECUTOR=executor,
        WORKER_NUM_IDLE_PROCESSES="3" if executor == "process" else "1",
    )
    try:
        await asyncio.sleep(2.0)
        idle_mb = tree_pss_mb(worker.process.pid)

        # Calls arrive spread out (a burst of N needs N fresh job processes at once).
        async def dial_at(delay: float) -> Phone | None:
            await asyncio.sleep(delay)
            try:
                return await bench.dial()
            except TimeoutError:
                return None

        dialled = await asyncio.gather(*(dial_at(i * 0.5) for i in range(n)))
        phones = [p for p in dialled if p is not None]
        if len(phones) < n:
            print(f"    !! {n - len(phones)} of {n} calls were never greeted")
        busy_mb = tree_pss_mb(worker.process.pid)
        samples: list[float] = []

        unanswered = 0

        async def talk(phone: Phone, delay: float) -> None:
            nonlocal unanswered
            await asyncio.sleep(delay)
            for _ in range(turns):
                try:
                    samples.append(await one_turn(phone, utterance))
                except TimeoutError:
                    unanswered += 1
                    return

        # Staggered so turns overlap the way independent callers' do.
        server_pid = bench.livekit.process.pid if bench.livekit.process else 0
        pids = {"worker": worker.process.pid, "livekit-server": server_pid}

        def cpu_now() -> dict[str, float]:
            # This process's own CPU only: the worker, livekit-server, the stand-in and
            # Postgres are its children, so a tree sum would count them twice.
            return {
                **{name: tree_cpu_seconds(pid) for name, pid in pids.items()},
                "callers": time.process_time(),
                "stand-in": tree_cpu_seconds(bench.remote_standin_pid),
            }

        cpu_before = cpu_now()
        wall_before = time.monotonic()
        await asyncio.gather(*(talk(p, i * 0.37 % 2.0) for i, p in enumerate(phones)))
        wall = time.monotonic() - wall_before
        cpu_after = cpu_now()
        shares = {n: (cpu_after[n] - cpu_before[n]) / wall for n in cpu_before}
        print("    CPU while talking (cores): "
              + ", ".join(f"{name} {share:.2f}" for name, share in shares.items()))  # fmt: skip
        for phone in phones:
            await phone.hang_up()
        if unanswered:
            print(f"    !! {unanswered} of {len(phones)} calls had a turn never answered (30 s)")
        return samples, idle_mb, busy_mb
    finally:
        worker.stop()


async def turn_figures(bench: Bench, turns: int, utterance: bytes, critical: float) -> None:
    e2e = await turn_overhead(bench, turns, utterance, preemptive=False)
    over = [s - critical for s in e2e]
    transport = await transport_round_trip(bench, utterance, max(10, turns // 2))
    print("    samples (ms):", " ".join(f"{x * 1000:.0f}" for x in over))
    print(f"\n(1) turn overhead, {len(e2e)} turns, preemptive generation off:")
    print(f"    end-to-end p50 {ms(pct(e2e, 50))}  p95 {ms(pct(e2e, 95))}"
          f"  (ratio to baseline p50 {pct(e2e, 50) / critical:.2f}x)")  # fmt: skip
    print(f"    overhead   p50 {ms(pct(over, 50))}  p95 {ms(pct(over, 95))}"
          f"  target p95 < 60 ms: {'met' if pct(over, 95) < 0.060 else 'MISSED'}")  # fmt: skip
    # The same audio path with an echo in the worker's place: what WebRTC, the server and
    # the frame sizes cost on their own, measured in this run.
    beyond = [x - pct(transport, 50) for x in over]
    print(
        f"    transport round trip (echo participant, {len(transport)} utterances):"
        f" p50 {ms(pct(transport, 50))}  p95 {ms(pct(transport, 95))}"
    )
    print(
        f"    overhead beyond the transport's p50: p50 {ms(pct(beyond, 50))}"
        f"  p95 {ms(pct(beyond, 95))}  (Silero's decay after speech, the worker's own work)"
    )
    pre = await turn_overhead(bench, max(5, turns // 2), utterance, preemptive=True)
    print(f"    with preemptive generation on (production default): end-to-end"
          f" p50 {ms(pct(pre, 50))}  p95 {ms(pct(pre, 95))}")  # fmt: skip


async def barge_in_figures(
    bench: Bench, count: int, utterance: bytes, interrupt: bytes, min_duration: float
) -> None:
    barges = await barge_in(bench, count, utterance, interrupt, min_duration)
    print(f"\n(2) barge-in, {len(barges)} interruptions,"
          f" WORKER_INTERRUPTION_MIN_DURATION={min_duration}:")  # fmt: skip
    print(f"    onset -> agent audio stops p50 {ms(pct(barges, 50))}"
          f"  p95 {ms(pct(barges, 95))}  target p95 < 300 ms:"
          f" {'met' if pct(barges, 95) < 0.300 else 'MISSED'}")  # fmt: skip


async def concurrency_figures(
    bench: Bench,
    calls: list[int],
    utterance: bytes,
    turns: int,
    executors: list[str],
    critical: float,
) -> None:
    print("\n(3) concurrent calls on one worker (this box: 2 cores shared with"
          " livekit-server, Postgres, the stand-in and the callers):")  # fmt: skip
    for executor in executors:
        for n in calls:
            samples, idle_mb, busy_mb = await concurrency(bench, n, utterance, turns, executor)
            over = [x - critical for x in samples] or [float("nan")]
            per_call = (busy_mb - idle_mb) / n  # n dialled; see the "never greeted" line
            print(f"    {executor:7s} {n:3d} calls: overhead p50 {ms(pct(over, 50))}"
                  f" p95 {ms(pct(over, 95))}; worker PSS idle {idle_mb:.0f} MB,"
                  f" with calls {busy_mb:.0f} MB -> {per_call:.1f} MB/call")  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--barge-ins", type=int, default=15)
    parser.add_argument("--calls", default="10,25")
    parser.add_argument("--concurrent-turns", type=int, default=3)
    # Defaults are production's; A/B runs list more (--executors process,thread).
    parser.add_argument("--executors", default=DEFAULTS.worker.job_executor)
    parser.add_argument(
        "--interrupt-min-durations", default=str(DEFAULTS.worker.interruption_min_duration)
    )
    parser.add_argument(
        "--sections", default="turns,barge-in,concurrency", help="figures to measure"
    )
    parser.add_argument(
        "--worker-env",
        default="",
        help="comma-separated KEY=VALUE settings for every worker (A/B runs of one knob)",
    )
    parser.add_argument("--serve-standin", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_standin:
        serve_standin(args.serve_standin)
        return
    sections = set(args.sections.split(","))

    data_dir = Path(tempfile.mkdtemp(prefix="wassla-bench-"))
    os.chmod(data_dir, 0o755)  # Postgres runs as its own user
    dsn = await asyncio.to_thread(start_embedded, data_dir)
    conn = await asyncpg.connect(dsn)
    await migrate.apply(conn)
    ws = await factories.workspace(conn, credits_minor=10_000_000)
    agent = await factories.agent(conn, ws.id, greeting="Hello.", modality="voice")
    await factories.channel(conn, ws.id, kind="voice", number=NUMBER, agent_id=agent.id)
    await conn.close()

    standin = OpenAIStandIn(stt_delay=STT_S, tts_first_byte_delay=TTS_TTFB_S)
    standin.default_transcript = "What time do you open tomorrow?"
    fixed_latency(standin)
    standin.start()
    remote, remote_url = start_standin_process()
    livekit = LiveKitServer.start()
    bench = Bench(
        livekit=livekit,
        standin=standin,
        remote_standin_url=remote_url,
        remote_standin_pid=remote.pid,
        dsn=dsn,
        data_dir=data_dir,
        worker_env=dict(kv.split("=", 1) for kv in args.worker_env.split(",") if kv),
    )
    utterance = espeak_pcm("What time do you open tomorrow?")
    interrupt = espeak_pcm("Wait, wait, stop please, I have a question.")
    critical = max(VAD_SILENCE_S + STT_S, ENDPOINT_S) + LLM_TTFT_S + TTS_TTFB_S
    try:
        print(f"stand-in latencies: STT {ms(STT_S)}, LLM TTFT {ms(LLM_TTFT_S)},"
              f" TTS TTFB {ms(TTS_TTFB_S)}; VAD silence {ms(VAD_SILENCE_S)},"
              f" endpointing {ms(ENDPOINT_S)}")  # fmt: skip
        print(f"ideal critical path (baseline) = max(VAD silence + STT, endpointing)"
              f" + LLM TTFT + TTS TTFB = {ms(critical)}")  # fmt: skip
        if "turns" in sections:
            await turn_figures(bench, args.turns, utterance, critical)
        if "barge-in" in sections:
            for min_duration in (float(x) for x in args.interrupt_min_durations.split(",")):
                await barge_in_figures(bench, args.barge_ins, utterance, interrupt, min_duration)
        if "concurrency" in sections:
            await concurrency_figures(
                bench,
                [int(x) for x in args.calls.split(",")],
                utterance,
                args.concurrent_turns,
                args.executors.split(","),
                critical,
            )
    finally:
        livekit.stop()
        standin.stop()
        remote.terminate()
        stop_embedded(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
