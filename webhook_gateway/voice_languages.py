"""An agent's language -> the `<Gather>` speech language and a `<Say>` voice that fit it.

Twilio rejects a `<Say>` whose voice and language do not match, and a `<Gather>` with a
language its recogniser does not know, so every pair here is one Twilio lists. Arabic has no
`ar-SA` text-to-speech locale: Saudi and Gulf callers are recognised as themselves and
answered by the Gulf (`ar-AE`) neural voice. A language missing from the table falls back to
its base language, then to US English, and says so in the log: a caller never gets silence.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from shared.voices import loop_voice

logger = logging.getLogger("webhook_gateway.voice")


@dataclass(frozen=True)
class VoiceLocale:
    """How the TwiML loop listens and speaks for one agent language."""

    gather_language: str  # BCP-47 tag for <Gather language=...>
    say_voice: str  # Twilio voice name for <Say voice=...>
    say_language: str  # the locale that voice speaks, for <Say language=...>
    phrase_language: str  # key of the fixed lines (shared/phrases.py), e.g. "ar"
    fallback: bool = False  # True when the agent's language had no voice of its own
    voice_fallback: bool = False  # the agent's voice does not speak it: the locale's default


def _v(gather: str, voice: str, say: str | None = None) -> VoiceLocale:
    return VoiceLocale(gather, voice, say or gather, gather.split("-")[0])


_GULF_ARABIC = "Polly.Hala-Neural"  # ar-AE neural voice: closest to Saudi and Gulf speech

_BY_TAG: dict[str, VoiceLocale] = {
    # Arabic: Saudi and Gulf first; other Arabic locales speak Modern Standard Arabic.
    "ar-SA": _v("ar-SA", _GULF_ARABIC, "ar-AE"),
    "ar-AE": _v("ar-AE", _GULF_ARABIC, "ar-AE"),
    "ar-KW": _v("ar-KW", _GULF_ARABIC, "ar-AE"),
    "ar-QA": _v("ar-QA", _GULF_ARABIC, "ar-AE"),
    "ar-BH": _v("ar-BH", _GULF_ARABIC, "ar-AE"),
    "ar-OM": _v("ar-OM", _GULF_ARABIC, "ar-AE"),
    "ar-EG": _v("ar-EG", "Polly.Zeina", "arb"),
    "ar-JO": _v("ar-JO", "Polly.Zeina", "arb"),
    "ar-LB": _v("ar-LB", "Polly.Zeina", "arb"),
    "ar-MA": _v("ar-MA", "Polly.Zeina", "arb"),
    # English
    "en-US": _v("en-US", "Polly.Joanna-Neural"),
    "en-GB": _v("en-GB", "Polly.Amy-Neural"),
    "en-AU": _v("en-AU", "Polly.Olivia-Neural"),
    "en-IN": _v("en-IN", "Polly.Kajal-Neural"),
    # European
    "fr-FR": _v("fr-FR", "Polly.Lea-Neural"),
    "fr-CA": _v("fr-CA", "Polly.Gabrielle-Neural"),
    "es-ES": _v("es-ES", "Polly.Lucia-Neural"),
    "es-MX": _v("es-MX", "Polly.Mia-Neural"),
    "es-US": _v("es-US", "Polly.Lupe-Neural"),
    "de-DE": _v("de-DE", "Polly.Vicki-Neural"),
    "it-IT": _v("it-IT", "Polly.Bianca-Neural"),
    "pt-BR": _v("pt-BR", "Polly.Camila-Neural"),
    "pt-PT": _v("pt-PT", "Polly.Ines-Neural"),
    "tr-TR": _v("tr-TR", "Polly.Filiz"),  # standard voice: the one Twilio lists for Turkish
    # South Asian
    "hi-IN": _v("hi-IN", "Polly.Kajal-Neural"),
    # No Polly voice reads Urdu script; Google's Urdu voice does (Twilio lists Google voices).
    "ur-PK": _v("ur-PK", "Google.ur-IN-Standard-A", "ur-IN"),
    "ur-IN": _v("ur-IN", "Google.ur-IN-Standard-A", "ur-IN"),
}

# A bare language ("ar", "fr") or an unlisted region ("fr-BE") uses its main locale.
_BY_LANGUAGE: dict[str, str] = {
    "ar": "ar-SA",
    "en": "en-US",
    "fr": "fr-FR",
    "es": "es-ES",
    "de": "de-DE",
    "it": "it-IT",
    "pt": "pt-BR",
    "tr": "tr-TR",
    "hi": "hi-IN",
    "ur": "ur-PK",
}
DEFAULT_TAG = "en-US"


def _normalise(tag: str) -> str:
    parts = tag.strip().replace("_", "-").split("-")
    if len(parts) >= 2:
        return f"{parts[0].lower()}-{parts[1].upper()}"
    return parts[0].lower()


def voice_locale(language: str, voice: str | None = None) -> VoiceLocale:
    """The Gather language and Say voice for an agent's language and its chosen voice."""
    tag = _normalise(language or DEFAULT_TAG)
    locale = _BY_TAG.get(tag)
    if locale is None and tag.split("-")[0] in _BY_LANGUAGE:
        locale = _BY_TAG[_BY_LANGUAGE[tag.split("-")[0]]]
    if locale is None:
        logger.warning(
            "voice.language_fallback", extra={"language": language, "fallback": DEFAULT_TAG}
        )
        base = _BY_TAG[DEFAULT_TAG]
        locale = VoiceLocale(
            base.gather_language, base.say_voice, base.say_language, "en", fallback=True
        )
    if voice:
        locale = _with_agent_voice(locale, voice)
    return locale


def _with_agent_voice(locale: VoiceLocale, voice: str) -> VoiceLocale:
    """The locale speaking the agent's own voice (shared/voices.py), when it can."""
    chosen = None if locale.fallback else loop_voice(voice, locale.say_language, locale.say_voice)
    if chosen is None:
        # Not a voice of this language (or none of that gender here): the locale's own; the
        # loop logs it once a call (voice_loop.voice_fallback), not on every turn.
        return VoiceLocale(
            locale.gather_language, locale.say_voice, locale.say_language,
            locale.phrase_language, fallback=locale.fallback, voice_fallback=True,
        )  # fmt: skip
    return VoiceLocale(locale.gather_language, chosen.name, chosen.locale, locale.phrase_language)


def supported_tags() -> list[str]:
    """Every language tag with a voice of its own (for docs and tests)."""
    return sorted(_BY_TAG)
