"""The model's failures the SMS and voice fault tests share, scripted at the OpenAI stand-in.

Each is a ParameterSet of (scripts for the stand-in, chat requests our client makes, a
fragment of the error it records); the settings cap the model's deadline at
`MODEL_DEADLINE_SECONDS` so a hang costs a test about that long.
"""

from __future__ import annotations

import pytest

from tests.standins.openai_api import ChatScript

MODEL_DEADLINE_SECONDS = 2.5  # room for the two retries' backoff (0.5 s + 1 s)
_ATTEMPTS = 3  # the first try and Settings.openai.max_retries (2) retries
_HALF = "Thanks for your message. We will"

MODEL_FAULTS: list[pytest.ParameterSet] = [
    pytest.param([ChatScript("", status=400)], 1, "400", id="final-400"),
    pytest.param([ChatScript("", status=500)] * _ATTEMPTS, _ATTEMPTS, "500", id="500"),
    pytest.param([ChatScript("", status=429)] * _ATTEMPTS, _ATTEMPTS, "429", id="429-retried"),
    pytest.param(
        [ChatScript("late", first_token_delay=MODEL_DEADLINE_SECONDS * 3)], 1, "", id="hang"
    ),
    pytest.param([ChatScript(_HALF, ending="cut")], 1, "ended before", id="half-a-stream"),
    pytest.param([ChatScript(_HALF, ending="error")], 1, "mid-stream", id="error-event"),
]
