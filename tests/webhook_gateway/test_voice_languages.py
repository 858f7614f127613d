"""The language -> Gather language / Say voice table, fixed lines, and the SIP URI."""

from __future__ import annotations

import pytest

from shared import voices
from shared.phrases import asks_for_human, line
from webhook_gateway.voice_languages import supported_tags, voice_locale
from webhook_gateway.voice_twiml import livekit_sip_uri


@pytest.mark.parametrize(
    ("language", "gather", "voice", "say_language"),
    [
        ("ar-SA", "ar-SA", "Polly.Hala-Neural", "ar-AE"),
        ("ar-AE", "ar-AE", "Polly.Hala-Neural", "ar-AE"),
        ("ar-KW", "ar-KW", "Polly.Hala-Neural", "ar-AE"),
        ("ar", "ar-SA", "Polly.Hala-Neural", "ar-AE"),
        ("en-US", "en-US", "Polly.Joanna-Neural", "en-US"),
        ("en-GB", "en-GB", "Polly.Amy-Neural", "en-GB"),
        ("fr-FR", "fr-FR", "Polly.Lea-Neural", "fr-FR"),
        ("es-ES", "es-ES", "Polly.Lucia-Neural", "es-ES"),
        ("de-DE", "de-DE", "Polly.Vicki-Neural", "de-DE"),
        ("it-IT", "it-IT", "Polly.Bianca-Neural", "it-IT"),
        ("pt-BR", "pt-BR", "Polly.Camila-Neural", "pt-BR"),
        ("tr-TR", "tr-TR", "Polly.Filiz", "tr-TR"),
        ("hi-IN", "hi-IN", "Polly.Kajal-Neural", "hi-IN"),
        ("ur-PK", "ur-PK", "Google.ur-IN-Standard-A", "ur-IN"),
        ("en_gb", "en-GB", "Polly.Amy-Neural", "en-GB"),  # normalised
        ("fr-BE", "fr-FR", "Polly.Lea-Neural", "fr-FR"),  # unlisted region: main locale
    ],
)
def test_each_required_language_has_a_gather_language_and_a_matching_voice(
    language: str, gather: str, voice: str, say_language: str
) -> None:
    locale = voice_locale(language)
    assert (locale.gather_language, locale.say_voice, locale.say_language) == (
        gather,
        voice,
        say_language,
    )
    assert not locale.fallback


def test_language_without_a_voice_falls_back_to_english_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    locale = voice_locale("sw-KE")
    assert locale.fallback
    assert (locale.gather_language, locale.say_voice, locale.phrase_language) == (
        "en-US",
        "Polly.Joanna-Neural",
        "en",
    )
    assert any(r.message == "voice.language_fallback" for r in caplog.records)


@pytest.mark.parametrize(
    ("language", "voice", "say_voice", "say_language"),
    [
        ("en-GB", "Polly.Brian-Neural", "Polly.Brian-Neural", "en-GB"),  # a voice of its own
        ("en-US", "Google.en-US-Neural2-F", "Google.en-US-Neural2-F", "en-US"),
        ("en-GB", "Polly.Joanna-Neural", "Polly.Joanna-Neural", "en-US"),  # its own locale
        ("ar-EG", "Polly.Hala-Neural", "Polly.Hala-Neural", "ar-AE"),
        ("fr-FR", "Polly.Remi-Neural", "Polly.Remi-Neural", "fr-FR"),
        # An OpenAI voice: the locale's default when the gender fits, else one that does.
        ("en-US", "nova", "Polly.Joanna-Neural", "en-US"),
        ("en-US", "onyx", "Polly.Matthew-Neural", "en-US"),
        ("ar-SA", "ash", "Polly.Zayd-Neural", "ar-AE"),
        ("de-DE", "echo", "Polly.Daniel-Neural", "de-DE"),
        ("tr-TR", "onyx", "Google.tr-TR-Wavenet-B", "tr-TR"),
        ("ur-PK", "verse", "Google.ur-IN-Standard-B", "ur-IN"),
    ],
)
def test_the_agents_voice_is_spoken_when_it_speaks_the_language(
    language: str, voice: str, say_voice: str, say_language: str
) -> None:
    locale = voice_locale(language, voice)
    assert (locale.say_voice, locale.say_language) == (say_voice, say_language)
    assert not locale.voice_fallback


@pytest.mark.parametrize(
    ("language", "voice", "default"),
    [
        ("en-GB", "Polly.Lea-Neural", "Polly.Amy-Neural"),  # French voice, English agent
        ("fr-FR", "Polly.Mystery", "Polly.Lea-Neural"),  # not a voice we know
        ("ar-EG", "onyx", "Polly.Zeina"),  # no male voice for Modern Standard Arabic
    ],
)
def test_a_voice_that_cannot_speak_the_language_falls_back_to_the_locales_default(
    language: str, voice: str, default: str
) -> None:
    locale = voice_locale(language, voice)
    assert locale.say_voice == default and locale.voice_fallback
    assert locale.gather_language == voice_locale(language).gather_language


def test_every_locale_default_is_in_the_voice_catalogue() -> None:
    catalogue = {(v.name, v.locale) for v in voices.LOOP_VOICES}
    for tag in supported_tags():
        locale = voice_locale(tag)
        assert (locale.say_voice, locale.say_language) in catalogue, tag
        assert voices.loop_voices_for(tag), tag


def test_every_table_entry_has_fixed_lines_in_its_language_or_english() -> None:
    for tag in supported_tags():
        locale = voice_locale(tag)
        for name in ("filler", "reprompt", "goodbye", "time_up", "apology", "unavailable",
                     "still_there", "idle_goodbye", "hold", "nobody_answered"):  # fmt: skip
            assert line(name, locale.phrase_language)  # type: ignore[arg-type]
    assert line("goodbye", "ar") != line("goodbye", "en")
    assert line("goodbye", "sw") == line("goodbye", "en")


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        ("Can I talk to a human please?", "en", True),
        ("I want a representative", "en", True),
        ("I love humanity", "en", False),
        ("Where is my order?", "en", False),
        ("أبي أكلم موظف", "ar", True),
        ("Je voudrais parler à un conseiller", "fr", True),
        ("HUMAN", "de", True),  # English phrases count in every language
    ],
)
def test_requests_for_a_human_are_recognised_by_whole_words(
    text: str, language: str, expected: bool
) -> None:
    assert asks_for_human(text, language) is expected


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (
            "sip:proj.sip.livekit.cloud;transport=tcp",
            "sip:+15551234567@proj.sip.livekit.cloud;transport=tcp?X-Wassla-Call-Sid=CA1",
        ),
        ("proj.sip.livekit.cloud", "sip:+15551234567@proj.sip.livekit.cloud?X-Wassla-Call-Sid=CA1"),
        (
            "sip:old-user@10.0.0.1:5060;transport=tcp?X-Region=eu",
            "sip:+15551234567@10.0.0.1:5060;transport=tcp?X-Region=eu&X-Wassla-Call-Sid=CA1",
        ),
        ("sips:proj.example", "sips:+15551234567@proj.example?X-Wassla-Call-Sid=CA1"),
    ],
)
def test_livekit_sip_uri_carries_the_called_number_and_call_sid(
    setting: str, expected: str
) -> None:
    assert livekit_sip_uri(setting, "+15551234567", "CA1") == expected
