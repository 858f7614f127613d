"""Who is calling, which agent a playground asked for, and the worker's own lines."""

from __future__ import annotations

import json

from shared import phrases
from worker.caller import call_sid_from_attributes, playground_agent_id
from worker.providers import stt_language


def test_call_sid_prefers_our_gateway_header_then_twilio_then_livekit() -> None:
    attrs = {"sip.callID": "SCL_1", "sip.twilio.callSid": "CA_twilio", "wassla.call_sid": "CA_ours"}
    assert call_sid_from_attributes(attrs) == "CA_ours"
    del attrs["wassla.call_sid"]
    assert call_sid_from_attributes(attrs) == "CA_twilio"
    del attrs["sip.twilio.callSid"]
    assert call_sid_from_attributes(attrs) == "SCL_1"
    assert call_sid_from_attributes({"wassla.call_sid": "  "}) is None


def test_playground_agent_comes_from_job_then_room_metadata_then_settings() -> None:
    job = json.dumps({"agent_id": "from-job"})
    room = json.dumps({"agent_id": "from-room"})
    assert playground_agent_id(job, room, "from-settings") == "from-job"
    assert playground_agent_id("", room, "from-settings") == "from-room"
    assert playground_agent_id("not json", "[1]", "from-settings") == "from-settings"
    assert playground_agent_id(None, None, None) is None


def test_fixed_lines_follow_the_agent_language_and_fall_back_to_english() -> None:
    assert phrases.line("goodbye", "ar-EG").startswith("شكرا")
    assert phrases.line("goodbye", "fr") == "Merci de votre appel. Au revoir !"
    assert phrases.line("goodbye", "sw-KE") == phrases.line("goodbye", "en-US")


def test_transcription_language_is_the_agents_primary_subtag() -> None:
    assert stt_language("ar-EG") == "ar"
    assert stt_language("en_US") == "en"
    assert stt_language("") == "en"
