"""The voices an agent may speak with, per voice path, and how one `voice` value serves both.

The LiveKit worker speaks through OpenAI's text-to-speech (its voice names); the TwiML loop
speaks through Twilio's `<Say>` (Amazon Polly and Google voices, each for one locale). An
agent stores one `voice`: an OpenAI name or a Twilio name. Each path turns it into one of its
own: the loop maps an OpenAI voice to a voice of the same gender for the call's locale, the
worker maps a Twilio voice to an OpenAI voice of the same gender, so one value works on both
and a caller hears a like-sounding agent whichever path answers. Validation (AgentFields) uses
the same tables, so a voice that is accepted is one both paths can speak.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shared.errors import InvalidInput

Gender = Literal["female", "male"]

# OpenAI's text-to-speech voices (gpt-4o-mini-tts), by how they sound; alloy is near neutral.
WORKER_VOICES: dict[str, Gender] = {
    "alloy": "female",
    "ash": "male",
    "ballad": "male",
    "coral": "female",
    "echo": "male",
    "fable": "male",
    "nova": "female",
    "onyx": "male",
    "sage": "female",
    "shimmer": "female",
    "verse": "male",
    "marin": "female",
    "cedar": "male",
}
DEFAULT_WORKER_VOICE = "alloy"
_WORKER_BY_GENDER: dict[Gender, str] = {"female": "coral", "male": "ash"}


@dataclass(frozen=True)
class LoopVoice:
    """A voice Twilio's `<Say>` speaks, and the one locale it speaks."""

    name: str  # <Say voice=...>
    locale: str  # <Say language=...>: Twilio refuses a voice with another locale
    gender: Gender

    @property
    def language(self) -> str:
        return language_of(self.locale)


def _voices(locale: str, *names: str) -> tuple[LoopVoice, ...]:
    """Voices of one locale, each written `name:f` or `name:m`."""
    out = []
    for spec in names:
        name, _, gender = spec.rpartition(":")
        out.append(LoopVoice(name, locale, "female" if gender == "f" else "male"))
    return tuple(out)


# Twilio's Polly and Google voices for the locales the TwiML loop speaks; neural ones first.
LOOP_VOICES: tuple[LoopVoice, ...] = (
    *_voices("en-US", "Polly.Joanna-Neural:f", "Polly.Matthew-Neural:m", "Polly.Ruth-Neural:f",
             "Polly.Stephen-Neural:m", "Polly.Kendra-Neural:f", "Polly.Joey-Neural:m",
             "Polly.Salli-Neural:f", "Polly.Kimberly-Neural:f", "Polly.Joanna:f",
             "Polly.Matthew:m", "Google.en-US-Neural2-F:f", "Google.en-US-Neural2-J:m",
             "Google.en-US-Neural2-C:f", "Google.en-US-Neural2-D:m"),
    *_voices("en-GB", "Polly.Amy-Neural:f", "Polly.Brian-Neural:m", "Polly.Emma-Neural:f",
             "Polly.Arthur-Neural:m", "Google.en-GB-Neural2-A:f", "Google.en-GB-Neural2-B:m"),
    *_voices("en-AU", "Polly.Olivia-Neural:f", "Polly.Nicole:f", "Polly.Russell:m",
             "Google.en-AU-Neural2-A:f", "Google.en-AU-Neural2-B:m"),
    *_voices("en-IN", "Polly.Kajal-Neural:f", "Polly.Raveena:f", "Polly.Aditi:f",
             "Google.en-IN-Neural2-A:f", "Google.en-IN-Neural2-B:m"),
    *_voices("ar-AE", "Polly.Hala-Neural:f", "Polly.Zayd-Neural:m"),
    *_voices("arb", "Polly.Zeina:f"),
    *_voices("ar-XA", "Google.ar-XA-Wavenet-A:f", "Google.ar-XA-Wavenet-B:m"),
    *_voices("fr-FR", "Polly.Lea-Neural:f", "Polly.Remi-Neural:m", "Polly.Lea:f",
             "Polly.Mathieu:m", "Polly.Celine:f", "Google.fr-FR-Neural2-A:f",
             "Google.fr-FR-Neural2-B:m"),
    *_voices("fr-CA", "Polly.Gabrielle-Neural:f", "Polly.Liam-Neural:m", "Polly.Chantal:f",
             "Google.fr-CA-Neural2-A:f", "Google.fr-CA-Neural2-B:m"),
    *_voices("es-ES", "Polly.Lucia-Neural:f", "Polly.Sergio-Neural:m", "Polly.Conchita:f",
             "Polly.Enrique:m", "Google.es-ES-Neural2-A:f", "Google.es-ES-Neural2-B:m"),
    *_voices("es-MX", "Polly.Mia-Neural:f", "Polly.Andres-Neural:m"),
    *_voices("es-US", "Polly.Lupe-Neural:f", "Polly.Pedro-Neural:m", "Polly.Penelope:f",
             "Polly.Miguel:m", "Google.es-US-Neural2-A:f", "Google.es-US-Neural2-B:m"),
    *_voices("de-DE", "Polly.Vicki-Neural:f", "Polly.Daniel-Neural:m", "Polly.Marlene:f",
             "Polly.Hans:m", "Google.de-DE-Neural2-C:f", "Google.de-DE-Neural2-B:m"),
    *_voices("it-IT", "Polly.Bianca-Neural:f", "Polly.Adriano-Neural:m", "Polly.Carla:f",
             "Polly.Giorgio:m", "Google.it-IT-Neural2-A:f", "Google.it-IT-Neural2-C:m"),
    *_voices("pt-BR", "Polly.Camila-Neural:f", "Polly.Thiago-Neural:m",
             "Polly.Vitoria-Neural:f", "Polly.Ricardo:m", "Google.pt-BR-Neural2-A:f",
             "Google.pt-BR-Neural2-B:m"),
    *_voices("pt-PT", "Polly.Ines-Neural:f", "Polly.Cristiano:m"),
    *_voices("tr-TR", "Polly.Filiz:f", "Google.tr-TR-Wavenet-A:f", "Google.tr-TR-Wavenet-B:m"),
    *_voices("hi-IN", "Polly.Kajal-Neural:f", "Polly.Aditi:f", "Google.hi-IN-Neural2-A:f",
             "Google.hi-IN-Neural2-B:m"),
    *_voices("ur-IN", "Google.ur-IN-Standard-A:f", "Google.ur-IN-Standard-B:m",
             "Google.ur-IN-Wavenet-A:f", "Google.ur-IN-Wavenet-B:m"),
)  # fmt: skip


def language_of(tag: str) -> str:
    """The base language of a tag or Polly locale ("ar-AE" and "arb" -> "ar")."""
    base = (tag or "en").strip().replace("_", "-").split("-")[0].lower()
    return "ar" if base == "arb" else base


def loop_voices_for(language: str) -> list[LoopVoice]:
    """The Twilio voices that speak an agent's language (any of its regions)."""
    wanted = language_of(language)
    return [v for v in LOOP_VOICES if v.language == wanted]


def loop_voice(voice: str, say_locale: str, default: str) -> LoopVoice | None:
    """The loop's voice for an agent's `voice` in a call's `<Say>` locale, or None (default).

    A Twilio voice is used as it is when it speaks the locale's language; an OpenAI voice
    becomes the locale's default when that has the same gender, else the first voice of the
    locale that has it."""
    if voice in WORKER_VOICES:
        gender = WORKER_VOICES[voice]
        same_locale = [v for v in LOOP_VOICES if v.locale == say_locale]
        fitting = [v for v in same_locale if v.gender == gender]
        preferred = [v for v in fitting if v.name == default]
        chosen = preferred or fitting
        return chosen[0] if chosen else None
    language = language_of(say_locale)
    named = [v for v in LOOP_VOICES if v.name == voice and v.language == language]
    return named[0] if named else None


def worker_voice(voice: str | None) -> str:
    """The OpenAI voice the worker speaks for an agent's `voice` (a Twilio one by gender)."""
    if not voice:
        return DEFAULT_WORKER_VOICE
    if voice in WORKER_VOICES:
        return voice
    genders = {v.gender for v in LOOP_VOICES if v.name == voice}
    return _WORKER_BY_GENDER[genders.pop()] if len(genders) == 1 else DEFAULT_WORKER_VOICE


def check_voice(voice: str, language: str) -> str:
    """`voice` when an agent speaking `language` may use it; InvalidInput naming the choices."""
    voice = voice.strip()
    if voice in WORKER_VOICES or voice in {v.name for v in loop_voices_for(language)}:
        return voice
    phone = sorted({v.name for v in loop_voices_for(language)})
    raise InvalidInput(
        f"voice {voice[:60]!r} is not available for language {language!r}. Choose one of "
        f"the AI voices ({', '.join(WORKER_VOICES)})"
        + (f" or a phone voice for this language ({', '.join(phone)})" if phone else "")
    )
