import asyncpg
import pytest

from shared import agents, voices
from shared.agents import AgentFields
from shared.errors import InvalidInput
from tests.support import factories


def test_the_catalogue_offers_thirty_plus_voices_on_each_path_by_locale() -> None:
    assert len(voices.WORKER_VOICES) >= 11
    assert {"alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage",
            "shimmer", "verse"} <= set(voices.WORKER_VOICES)  # fmt: skip
    assert len({(v.name, v.locale) for v in voices.LOOP_VOICES}) >= 30
    by_locale = {v.locale for v in voices.LOOP_VOICES}
    assert {"en-US", "en-GB", "arb", "ar-AE", "fr-FR", "es-ES", "de-DE", "it-IT", "pt-BR",
            "tr-TR", "hi-IN", "ur-IN"} <= by_locale  # fmt: skip
    for voice in voices.LOOP_VOICES:
        assert voice.name.startswith(("Polly.", "Google.")), voice
        if voice.name.startswith("Google."):  # Google names carry their own locale
            assert voice.name.split(".")[1].startswith(voice.locale), voice


@pytest.mark.parametrize(
    ("voice", "language"),
    [("nova", "ar-SA"), ("onyx", "tr-TR"), ("Polly.Zeina", "ar-EG"), ("Polly.Hala-Neural", "ar"),
     ("Google.en-US-Neural2-F", "en-GB"), ("Polly.Lea-Neural", "fr-CA"),
     ("Google.ur-IN-Wavenet-B", "ur-PK")],
)  # fmt: skip
def test_a_voice_that_speaks_the_agents_language_is_accepted(voice: str, language: str) -> None:
    assert voices.check_voice(voice, language) == voice


def test_a_voice_of_another_language_is_refused_naming_the_choices() -> None:
    with pytest.raises(InvalidInput) as refused:
        voices.check_voice("Polly.Lea-Neural", "en-US")
    message = str(refused.value)
    assert "Polly.Lea-Neural" in message and "en-US" in message
    assert "alloy" in message and "Polly.Joanna-Neural" in message
    assert "Polly.Remi-Neural" not in message  # French voices are not choices for en-US
    with pytest.raises(InvalidInput, match="Google.ur-IN-Standard-A"):
        voices.check_voice("shimmer2", "ur-PK")


def test_the_worker_speaks_an_openai_voice_of_the_same_gender_for_a_phone_voice() -> None:
    assert voices.worker_voice(None) == "alloy"
    assert voices.worker_voice("sage") == "sage"
    assert voices.WORKER_VOICES[voices.worker_voice("Polly.Matthew-Neural")] == "male"
    assert voices.WORKER_VOICES[voices.worker_voice("Google.hi-IN-Neural2-A")] == "female"


async def test_agent_fields_check_the_voice_against_the_language_on_create_and_update(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn)
        with pytest.raises(InvalidInput, match="Polly.Joanna-Neural"):
            await factories.agent(conn, ws.id, language="en-US", voice="Polly.Lea-Neural")
        agent = await factories.agent(conn, ws.id, language="fr-FR", voice="Polly.Lea-Neural")
        assert agent.voice == "Polly.Lea-Neural"
        # An update of the voice alone is checked against the language the agent keeps.
        with pytest.raises(InvalidInput, match="Polly.Lea-Neural"):
            await agents.update_agent(conn, agent.id, AgentFields(voice="Polly.Joanna-Neural"))
        updated = await agents.update_agent(conn, agent.id, AgentFields(voice="onyx"))
        assert updated.voice == "onyx"
        both = await agents.update_agent(
            conn, agent.id, AgentFields(language="en-GB", voice="Polly.Brian-Neural")
        )
        assert (both.language, both.voice) == ("en-GB", "Polly.Brian-Neural")
        # A language changed alone is checked against the voice the agent keeps.
        with pytest.raises(InvalidInput, match="does not speak 'fr-FR'.*Polly.Lea-Neural"):
            await agents.update_agent(conn, agent.id, AgentFields(language="fr-FR"))
        kept = await agents.get_agent(conn, agent.id)
        assert (kept.language, kept.voice) == ("en-GB", "Polly.Brian-Neural")
        ai_voice = await agents.update_agent(conn, agent.id, AgentFields(voice="onyx"))
        assert ai_voice.voice == "onyx"  # an AI voice speaks every language
        moved = await agents.update_agent(conn, agent.id, AgentFields(language="fr-FR"))
        assert (moved.language, moved.voice) == ("fr-FR", "onyx")
