"""Voice worker bench: voice-to-voice, cut-offs, barge-in, and calls per worker.

Real livekit-server, real `python -m worker start` with the production settings, embedded
Postgres, and the OpenAI stand-in with fixed latencies (STT 100 ms, also the realtime final
transcript 100 ms after its end of audio, LLM first token 150 ms, TTS first byte 100 ms).
Callers are SIP-kind LiveKit participants speaking Piper's neural voice (--voice picks another,
bench/caller_voices.py); every figure is measured on the caller's side.

    .venv/bin/python bench/worker_latency.py [--ab-today] [--vads native,silero]

Figures:
  voice-to-voice = the caller's last voiced 10 ms frame leaving the caller -> the first agent
                  audio the caller hears, with the production settings; p50/p95 (targets
                  p50 <= 700 ms, p95 <= 850 ms). Beside it the FLOOR, measured in the same
                  run: the echo transport round trip (an echo participant in the worker's
                  place, same audio path) plus the stand-in's STT final, LLM first token and
                  TTS first byte latencies; and the worker's own per-stage timings
                  (`call.turn_metrics`: end_of_turn_delay shows how long endpointing waited).
  cut-offs      = 20 utterances with a 600-800 ms pause mid-sentence (each synthesized
                  as one sentence, so the intonation goes on across the pause): how many the
                  agent answered before the caller finished (target 0-1).
  barge-in      = caller's speech onset over a long reply -> the agent's audio stopping,
                  p50/p95 (target p95 <= 250 ms).
  concurrency   = N calls at once on one worker: voice-to-voice under load, worker memory
                  (PSS of the worker's whole process tree, the end-of-turn model loaded) per
                  call (target < 60 MB) and CPU per call of the worker (target <= 0.10 core),
                  the callers' and livekit-server's CPU reported apart (the callers are real
                  WebRTC participants on the same 2 cores).
  vad           = in this process, each VAD's stream fed 20 s of caller audio at 16 kHz:
                  CPU per second of audio (one call's VAD stream), native against Silero.

    --sections picks figures; --ab-today adds every figure with main's settings before issue
    14 (VAD-only turns, the Silero plugin, 0.55 s VAD silence, 0.5 s endpointing);
    --vads native,silero runs barge-in and concurrency with each VAD.
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

from bench.caller_voices import VOICES, say  # noqa: E402
from bench.loadgen import cpu_seconds  # noqa: E402
from shared import migrate  # noqa: E402
from shared.devdb import start_embedded, stop_embedded  # noqa: E402
from shared.settings import Settings  # noqa: E402
from tests.standins.openai_api import ChatScript, OpenAIStandIn  # noqa: E402
from tests.support import factories  # noqa: E402
from tests.support.audio import resample, rms  # noqa: E402
from tests.support.livekit_server import LiveKitServer  # noqa: E402
from tests.support.processes import free_port  # noqa: E402
from tests.support.worker_process import WorkerProcess, start_worker, worker_env  # noqa: E402
from tests.worker.phone import SAMPLE_RATE, SAMPLES_PER_FRAME, Phone, sip_token  # noqa: E402
from wassla.supervisor import dying_with_parent  # noqa: E402

DEFAULTS = Settings()  # the worker's defaults, where --worker-env leaves a knob alone
NUMBER = "+15557654321"
AGENT = "wassla-voice-bench"
# The stand-in: non-streaming STT answer, realtime final transcript after its end of audio,
# LLM first token, TTS first byte.
STT_S, STT_FINAL_S, LLM_TTFT_S, TTS_TTFB_S = 0.10, 0.10, 0.15, 0.10
# main before issue 14: turns by silence alone on the Silero plugin, each utterance uploaded
# to the non-streaming STT once the VAD heard it end (--ab-today).
TODAY = {
    "OPENAI_STT_STREAMING": "false",
    "WORKER_TURN_DETECTION": "vad",
    "WORKER_VAD": "silero",
    "WORKER_VAD_MIN_SILENCE": "0.55",
    "WORKER_ENDPOINTING_MIN_DELAY": "0.5",
    "WORKER_ENDPOINTING_MAX_DELAY": "3.0",
}
# Mid-sentence pauses (cut-offs): each first half is unfinished, each pause 600-800 ms.
PAUSED_SENTENCES = [
    ("I'd like to book a table for", "four people on Friday."),
    ("My order number is", "four five six seven."),
    ("I want to change my", "delivery address please."),
    ("Can you tell me when", "the store opens tomorrow?"),
    ("I was wondering if", "you could help me with my order."),
]
PAUSES_MS = [600, 670, 730, 800]
# Finished questions for voice-to-voice; --questions N takes turns over the first N, so the
# figure is not one sentence's verdict from the end-of-turn model.
QUESTIONS = [
    "What time do you open tomorrow?",
    "Where is my order?",
    "Do you deliver on Sundays?",
    "I need to cancel my subscription.",
    "How much does the large pizza cost?",
    "Can I pay by card?",
    "I'd like to speak to a manager.",
    "Is the store open on public holidays?",
    "My package arrived damaged.",
    "Thanks, that's all I needed.",
]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def ms(value: float) -> str:
    return f"{value * 1000:7.1f} ms"


def descendants(root_pid: int) -> list[int]:
    """A process and its live descendants."""
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
    found, stack = [], [root_pid]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def tree_pss_mb(root_pid: int) -> float:
    """Proportional set size of a process and all its descendants (shared pages split)."""
    total_kb = 0
    for pid in descendants(root_pid):
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
    return sum(cpu_seconds(pid) for pid in descendants(root_pid))


def _thread_ids(pid: int) -> list[int]:
    try:
        return [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []  # the process ended after descendants() saw it


def tree_thread_cpu(root_pid: int) -> dict[tuple[int, int], tuple[str, float]]:
    """CPU seconds of every live thread of a process tree by (pid, tid), with a label:
    the thread's name, and whether it runs in the root process or a child (a job process)."""
    threads: dict[tuple[int, int], tuple[str, float]] = {}
    for pid in descendants(root_pid):
        where = "main process" if pid == root_pid else "job processes"
        for tid in _thread_ids(pid):
            try:
                name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
            except OSError:
                continue  # the thread ended after the listing
            if tid == pid:
                name = f"{name} (main thread: the asyncio loop)"
            threads[(pid, tid)] = (f"{where}: {name}", cpu_seconds(pid, tid))
    return threads


def thread_shares(
    before: dict[tuple[int, int], tuple[str, float]],
    after: dict[tuple[int, int], tuple[str, float]],
    wall: float,
) -> list[tuple[str, float]]:
    """Cores each thread label took between two `tree_thread_cpu` readings, largest first;
    a thread that started in between counts from zero, one that ended is not counted."""
    shares: dict[str, float] = {}
    for key, (label, seconds) in after.items():
        used = seconds - before.get(key, (label, 0.0))[1]
        shares[label] = shares.get(label, 0.0) + used / wall
    return sorted(shares.items(), key=lambda item: -item[1])


def serve_standin(port_file: str) -> None:
    """Child-process entry: the stand-in with fixed latencies, away from the callers' GIL."""
    standin = OpenAIStandIn(stt_delay=STT_S, tts_first_byte_delay=TTS_TTFB_S)
    standin.default_reply = "We open at nine."
    standin.default_transcript = QUESTIONS[0]
    fixed_latency(standin)
    standin.start()
    Path(port_file).write_text(standin.base_url)
    counts, partial = Path(f"{port_file}.counts"), Path(f"{port_file}.counts.partial")
    while True:  # what the worker asked of the providers, for Bench.settled_counts()
        partial.write_text(json.dumps(standin_counts(standin)))
        partial.replace(counts)  # a reader never sees a half-written file
        time.sleep(0.2)


def standin_counts(standin: OpenAIStandIn) -> dict[str, int]:
    """Provider requests so far: transcripts (realtime: one per committed item), chat
    completions (preemptive generations included) and speech syntheses."""
    return {
        "transcripts": len(standin.transcription_requests),
        "chat": len(standin.chat_requests),
        "speech": len(standin.speech_requests),
    }


def fixed_latency(standin: OpenAIStandIn) -> None:
    if hasattr(standin, "stt_final_delay"):  # the realtime transcription endpoint's knob
        standin.stt_final_delay = STT_FINAL_S
    original = standin._next_chat

    def next_chat() -> ChatScript:
        script = original()
        script.first_token_delay = LLM_TTFT_S
        return script

    standin._next_chat = next_chat  # type: ignore[method-assign]


def start_standin_process() -> tuple[subprocess.Popen[bytes], str, Path]:
    port_file = Path(tempfile.mkstemp(prefix="standin-")[1])
    port_file.write_text("")
    process = subprocess.Popen(
        dying_with_parent([sys.executable, __file__, "--serve-standin", str(port_file)]),
    )
    deadline = time.monotonic() + 30
    while not port_file.read_text():
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError("stand-in process did not start")
        time.sleep(0.05)
    return process, port_file.read_text(), Path(f"{port_file}.counts")


@dataclass
class Bench:
    livekit: LiveKitServer
    standin: OpenAIStandIn  # in-process: scripted replies (barge-in)
    remote_standin_url: str  # child process: fixed short replies (turns, concurrency)
    remote_standin_pid: int
    remote_standin_counts: Path  # its standin_counts(), rewritten every 0.2 s
    dsn: str
    data_dir: Path
    worker_env: dict[str, str]  # --worker-env: settings every worker of this run gets

    def worker(self, extra: dict[str, str], *, remote: bool = True) -> WorkerProcess:
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
                "WORKER_MAX_CALLS": "60",
                "WORKER_NUM_IDLE_PROCESSES": "3",
                # worker_env() sets the tests' endpointing; the bench runs production's.
                "WORKER_ENDPOINTING_MIN_DELAY": str(DEFAULTS.worker.endpointing_min_delay),
                **self.worker_env,
                **extra,
            },
        )
        return start_worker(env, port, new_session=True)

    async def settled_counts(self) -> dict[str, int]:
        """The remote stand-in's request counts once a reply's requests have all landed."""
        await asyncio.sleep(0.5)  # two rewrites of the counts file
        counts: dict[str, int] = json.loads(self.remote_standin_counts.read_text())
        return counts

    async def requests_since(self, before: dict[str, int]) -> dict[str, int]:
        """Provider requests made since the `settled_counts()` that returned `before`."""
        after = await self.settled_counts()
        return {kind: after[kind] - before[kind] for kind in after}

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
    -> caller, with the worker's own frame sizes (its input stream's rate and frame size,
    an output AudioSource with the same queue), and no processing in between."""
    room = f"echo-{uuid.uuid4().hex[:10]}"
    token = sip_token(
        api_key=bench.livekit.api_key, api_secret=bench.livekit.api_secret, room=room,
        identity="caller", caller_number="+15550001111", called_number=NUMBER,
        call_sid="CA" + uuid.uuid4().hex, agent_name=None,
    )  # fmt: skip
    rate = int(bench.worker_env.get("WORKER_INPUT_SAMPLE_RATE", DEFAULTS.worker.input_sample_rate))
    frame_ms = int(bench.worker_env.get("WORKER_INPUT_FRAME_MS", DEFAULTS.worker.input_frame_ms))
    echo = rtc.Room()
    source = rtc.AudioSource(rate, 1, queue_size_ms=200)  # as the framework's audio output
    tasks: list[asyncio.Task[None]] = []

    async def mirror(track: rtc.Track) -> None:
        stream = rtc.AudioStream.from_track(
            track=track, sample_rate=rate, num_channels=1, frame_size_ms=frame_ms
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


async def voice_to_voice(
    bench: Bench, turns: int, utterances: list[bytes], env: dict[str, str]
) -> list[float]:
    worker = bench.worker(env)
    try:
        phone = await bench.dial()
        before = await bench.settled_counts()
        samples = [await one_turn(phone, utterances[i % len(utterances)]) for i in range(turns)]
        requests = await bench.requests_since(before)
        await phone.hang_up()
        await worker.wait_idle()
        print_stage_timings(worker)
        print("    provider requests per turn (the stand-in's count):",
              ", ".join(f"{k} {n / turns:.2f}" for k, n in requests.items()))  # fmt: skip
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


def paused_utterances(voice: str) -> list[tuple[bytes, float, float]]:
    """20 utterances with a pause mid-sentence: (pcm, seconds to the end of the first half,
    seconds to the last voiced frame), each synthesized as one sentence so its intonation goes
    on across the pause."""
    out = []
    for pause_ms in PAUSES_MS:
        for first, second in PAUSED_SENTENCES:
            pcm = say(
                voice, f"{first} {second}", pause_after_word=len(first.split()), pause_ms=pause_ms
            )
            voiced = _voiced_frames(pcm)
            frame_s = SAMPLES_PER_FRAME / SAMPLE_RATE
            gaps = [(b - a, a) for a, b in zip(voiced, voiced[1:], strict=False) if b - a > 30]
            first_end = (max(gaps)[1] + 1) * frame_s if gaps else 0.0
            out.append((pcm, first_end, (voiced[-1] + 1) * frame_s))
    return out


async def user_turns_stored(bench: Bench) -> int:
    conn = await asyncpg.connect(bench.dsn)
    try:
        count: int = await conn.fetchval("select count(*) from messages where role = 'user'")
        return count
    finally:
        await conn.close()


async def cut_offs(
    bench: Bench, voice: str, env: dict[str, str]
) -> tuple[int, int, int, list[float], dict[str, int]]:
    """How many paused utterances the agent answered before the caller finished, how many
    user turns the call stored for them (more than one an utterance: it was split), the
    voice-to-voice of the ones answered after, and the provider requests they took."""
    worker = bench.worker(env)
    cut, answered_after = 0, []
    utterances = paused_utterances(voice)
    try:
        phone = await bench.dial()
        turns_before = await user_turns_stored(bench)
        counts_before = await bench.settled_counts()
        for pcm, first_end, voiced_end in utterances:
            started = phone.say(pcm)
            first = await phone.wait_agent_speaking(after=started + first_end, within=30)
            if first < started + voiced_end:
                cut += 1
            else:
                answered_after.append(first - (started + voiced_end))
            await phone.finish_saying(within=30)
            # Let a cut reply, the barge-in and the reply to the whole sentence play out.
            await phone.wait_agent_quiet(after=max(first, started + voiced_end), quiet=1.5)
        requests = await bench.requests_since(counts_before)
        await phone.hang_up()
        await worker.wait_idle()
        turns = await user_turns_stored(bench) - turns_before
        return cut, len(utterances), turns, answered_after, requests
    finally:
        worker.stop()


async def barge_in(
    bench: Bench, count: int, utterance: bytes, interrupt: bytes, env: dict[str, str]
) -> list[float]:
    worker = bench.worker(env, remote=False)
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
            # The onset is the first voiced frame (Festival's clip starts with 170 ms of silence).
            onset = phone.say(interrupt) + leading_silence(interrupt)
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
    bench: Bench, n: int, utterance: bytes, turns: int, executor: str, env: dict[str, str]
) -> tuple[list[float], float, float, dict[str, float], list[tuple[str, float]]]:
    worker = bench.worker(
        {
            "WORKER_JOB_EXECUTOR": executor,
            "WORKER_NUM_IDLE_PROCESSES": "3" if executor == "process" else "1",
            **env,
        }
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
        threads_before = tree_thread_cpu(worker.process.pid)
        wall_before = time.monotonic()
        await asyncio.gather(*(talk(p, i * 0.37 % 2.0) for i, p in enumerate(phones)))
        wall = time.monotonic() - wall_before
        threads = thread_shares(threads_before, tree_thread_cpu(worker.process.pid), wall)
        cpu_after = cpu_now()
        shares = {name: (cpu_after[name] - cpu_before[name]) / wall for name in cpu_before}
        for phone in phones:
            await phone.hang_up()
        if unanswered:
            print(f"    !! {unanswered} of {len(phones)} calls had a turn never answered (30 s)")
        return samples, idle_mb, busy_mb, shares, threads
    finally:
        worker.stop()


async def vad_cpu(kind: str, pcm16k: bytes, seconds: float) -> float:
    """CPU seconds per second of caller audio through one stream of `kind` VAD, in this
    process, fed in the session's 10 ms frames as fast as it takes them."""
    settings = Settings(worker={"vad": kind})
    from worker import providers

    model = providers.load_vad(settings)
    frame = 160 * 2
    frames = [pcm16k[i : i + frame] for i in range(0, len(pcm16k) - frame + 1, frame)]
    total = int(seconds * 100)
    stream = model.stream()

    async def drain() -> int:
        count = 0
        async for _ in stream:
            count += 1
        return count

    drained = asyncio.ensure_future(drain())
    await asyncio.sleep(0.2)
    before = time.process_time()
    for i in range(total):
        stream.push_frame(rtc.AudioFrame(frames[i % len(frames)], 16000, 1, 160))
        if i % 10 == 0:
            await asyncio.sleep(0)
    stream.end_input()
    await drained
    used = time.process_time() - before
    await stream.aclose()
    return used / seconds


async def turn_figures(bench: Bench, turns: int, questions: list[bytes], ab_today: bool) -> None:
    e2e = await voice_to_voice(bench, turns, questions, {})
    transport = await transport_round_trip(bench, questions[0], max(10, turns // 2))
    providers_s = STT_FINAL_S + LLM_TTFT_S + TTS_TTFB_S
    floor = [t + providers_s for t in transport]
    print("    samples (ms):", " ".join(f"{x * 1000:.0f}" for x in e2e))
    print(f"\n(1) voice-to-voice, {len(e2e)} turns over {len(questions)} question(s),"
          " production settings"
          f" (WORKER_TURN_DETECTION={DEFAULTS.worker.turn_detection},"
          f" WORKER_VAD={DEFAULTS.worker.vad}):")  # fmt: skip
    print(f"    voice-to-voice p50 {ms(pct(e2e, 50))}  p95 {ms(pct(e2e, 95))}"
          f"  targets p50 <= 700 ms: {'met' if pct(e2e, 50) <= 0.700 else 'MISSED'},"
          f" p95 <= 850 ms: {'met' if pct(e2e, 95) <= 0.850 else 'MISSED'}")  # fmt: skip
    print(f"    FLOOR          p50 {ms(pct(floor, 50))}  p95 {ms(pct(floor, 95))}"
          f"  = echo transport round trip (p50 {ms(pct(transport, 50))},"
          f" p95 {ms(pct(transport, 95))}, {len(transport)} utterances)"
          f" + STT final {ms(STT_FINAL_S)} + LLM TTFT {ms(LLM_TTFT_S)}"
          f" + TTS TTFB {ms(TTS_TTFB_S)}")  # fmt: skip
    print(f"    above the floor p50 {ms(pct(e2e, 50) - pct(floor, 50))}"
          f"  p95 {ms(pct(e2e, 95) - pct(floor, 95))}")  # fmt: skip
    if ab_today:
        old = await voice_to_voice(bench, turns, questions, TODAY)
        print(f"    A/B main before issue 14 ({TODAY}): voice-to-voice"
              f" p50 {ms(pct(old, 50))}  p95 {ms(pct(old, 95))}")  # fmt: skip


async def cut_off_figures(bench: Bench, voice: str, ab_today: bool) -> None:
    runs: list[tuple[str, dict[str, str]]] = [("production settings", {})] + (
        [("main before issue 14", TODAY)] if ab_today else []
    )
    print("\n(2) cut-offs: utterances with a 600-800 ms pause mid-sentence answered before the"
          " caller finished (target 0-1 of 20):")  # fmt: skip
    for name, env in runs:
        cut, total, turns, after, requests = await cut_offs(bench, voice, env)
        rest = f"; the others answered p50 {ms(pct(after, 50))} after the sentence" if after else ""
        print(f"    {name:22s} {cut} of {total} cut off, {turns} user turns stored{rest}")
        print(
            f"    {'':22s} provider requests for the {total}: "
            + ", ".join(f"{k} {v}" for k, v in requests.items())
        )


async def barge_in_figures(
    bench: Bench, count: int, utterance: bytes, interrupt: bytes, vads: list[str]
) -> None:
    # The floor: the caller's speech reaching the worker and the silence coming back cannot
    # beat the echo round trip.
    echo = await transport_round_trip(bench, interrupt, 10)
    for kind in vads:
        barges = await barge_in(bench, count, utterance, interrupt, {"WORKER_VAD": kind})
        threshold = bench.worker_env.get(
            "WORKER_INTERRUPTION_MIN_DURATION", DEFAULTS.worker.interruption_min_duration
        )
        print(f"\n(3) barge-in, {len(barges)} interruptions, WORKER_VAD={kind},"
              f" WORKER_INTERRUPTION_MIN_DURATION={threshold}:")  # fmt: skip
        print(f"    onset -> agent audio stops p50 {ms(pct(barges, 50))}"
              f"  p95 {ms(pct(barges, 95))}  target p95 <= 250 ms:"
              f" {'met' if pct(barges, 95) <= 0.250 else 'MISSED'}")  # fmt: skip
        print(f"    FLOOR (echo round trip) p50 {ms(pct(echo, 50))}  p95 {ms(pct(echo, 95))};"
              f" above it p50 {ms(pct(barges, 50) - pct(echo, 50))}"
              f"  p95 {ms(pct(barges, 95) - pct(echo, 95))}")  # fmt: skip


async def concurrency_figures(
    bench: Bench,
    calls: list[int],
    utterance: bytes,
    turns: int,
    executors: list[str],
    vads: list[str],
) -> None:
    print("\n(4) concurrent calls on one worker (this box: 2 cores shared with"
          " livekit-server, Postgres, the stand-in and the callers):")  # fmt: skip
    for executor in executors:
        for kind in vads:
            for n in calls:
                samples, idle_mb, busy_mb, cpu, threads = await concurrency(
                    bench, n, utterance, turns, executor, {"WORKER_VAD": kind}
                )
                v2v = samples or [float("nan")]
                per_call = (busy_mb - idle_mb) / n  # n dialled; see the "never greeted" line
                print(f"    {executor} VAD={kind} {n} calls: voice-to-voice p50"
                      f" {ms(pct(v2v, 50))} p95 {ms(pct(v2v, 95))}")  # fmt: skip
                print(f"      worker CPU {cpu['worker'] / n:.3f} core/call"
                      f" (target <= 0.10: {'met' if cpu['worker'] / n <= 0.10 else 'MISSED'};"
                      f" {cpu['worker']:.2f} cores in all); apart: callers"
                      f" {cpu['callers']:.2f}, livekit-server {cpu['livekit-server']:.2f},"
                      f" stand-in {cpu['stand-in']:.2f} cores")  # fmt: skip
                print("      worker CPU by thread, core/call:")
                for label, cores in threads[:8]:
                    print(f"        {cores / n:.3f}  {label}")
                print(f"      worker PSS idle {idle_mb:.0f} MB (the models loaded), with calls"
                      f" {busy_mb:.0f} MB -> {per_call:.1f} MB/call (target < 60:"
                      f" {'met' if per_call < 60 else 'MISSED'})")  # fmt: skip


async def vad_figures(utterance: bytes, vads: list[str], rounds: int) -> None:
    pcm16k = resample(utterance + b"\0" * len(utterance), SAMPLE_RATE, 16000)
    print(f"\n(5) VAD alone, one stream, 20 s of caller audio at 16 kHz, {rounds} rounds:")
    for kind in vads:
        used = [await vad_cpu(kind, pcm16k, 20.0) for _ in range(rounds)]
        print(f"    {kind:7s} CPU {min(used) * 1000:.1f}-{max(used) * 1000:.1f} ms per second"
              f" of audio ({min(used):.4f}-{max(used):.4f} core per stream)")  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument(
        "--questions", type=int, default=1, help=f"voice-to-voice over 1-{len(QUESTIONS)}"
    )
    parser.add_argument("--barge-ins", type=int, default=15)
    parser.add_argument("--calls", default="5")
    parser.add_argument("--concurrent-turns", type=int, default=3)
    # Defaults are production's; A/B runs list more (--executors process,thread).
    parser.add_argument("--executors", default=DEFAULTS.worker.job_executor)
    parser.add_argument("--vads", default=DEFAULTS.worker.vad, help="A/B: native,silero")
    parser.add_argument("--ab-today", action="store_true", help="also main's pre-14 settings")
    parser.add_argument(
        "--voice",
        choices=VOICES,
        default=VOICES[0],
        help="the callers' voice (bench/caller_voices.py): Piper's neural voice, Festival's"
        " HTS voice (installed by hand), or espeak-ng",
    )
    parser.add_argument(
        "--sections",
        default="turns,cut-offs,barge-in,concurrency,vad",
        help="figures to measure",
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
    vads = args.vads.split(",")
    utterance = say(args.voice, QUESTIONS[0])
    if sections == {"vad"}:
        await vad_figures(utterance, vads, rounds=3)
        return

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
    standin.default_transcript = QUESTIONS[0]
    fixed_latency(standin)
    standin.start()
    remote, remote_url, remote_counts = start_standin_process()
    livekit = LiveKitServer.start()
    bench = Bench(
        livekit=livekit,
        standin=standin,
        remote_standin_url=remote_url,
        remote_standin_pid=remote.pid,
        remote_standin_counts=remote_counts,
        dsn=dsn,
        data_dir=data_dir,
        worker_env=dict(kv.split("=", 1) for kv in args.worker_env.split(",") if kv),
    )
    interrupt = say(args.voice, "Wait, wait, stop please, I have a question.")
    try:
        print(f"stand-in latencies: STT {ms(STT_S)} (realtime final {ms(STT_FINAL_S)} after"
              f" its end of audio), LLM TTFT {ms(LLM_TTFT_S)}, TTS TTFB {ms(TTS_TTFB_S)};"
              f" callers' voice {args.voice};"
              f" worker: turn detection {DEFAULTS.worker.turn_detection}, VAD"
              f" {DEFAULTS.worker.vad} (silence {DEFAULTS.worker.vad_min_silence} s),"
              f" endpointing {DEFAULTS.worker.endpointing_min_delay}-"
              f"{DEFAULTS.worker.endpointing_max_delay} s;"
              f" --worker-env {args.worker_env!r}")  # fmt: skip
        if "turns" in sections:
            questions = [utterance] + [say(args.voice, q) for q in QUESTIONS[1 : args.questions]]
            await turn_figures(bench, args.turns, questions, args.ab_today)
        if "cut-offs" in sections:
            await cut_off_figures(bench, args.voice, args.ab_today)
        if "barge-in" in sections:
            await barge_in_figures(bench, args.barge_ins, utterance, interrupt, vads)
        if "concurrency" in sections:
            await concurrency_figures(
                bench,
                [int(x) for x in args.calls.split(",")],
                utterance,
                args.concurrent_turns,
                args.executors.split(","),
                vads,
            )
        if "vad" in sections:
            await vad_figures(utterance, vads, rounds=3)
    finally:
        livekit.stop()
        standin.stop()
        remote.terminate()
        stop_embedded(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
