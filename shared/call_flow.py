"""The call-flow rules both voice paths keep, the TwiML loop and the LiveKit worker: which key
ends a keypad entry, how an entry reads to the model and in the transcript, and the idle
caller's timers, where an agent's own values override the deployment's."""

from __future__ import annotations

from shared import phrases
from shared.models import Agent
from shared.settings import CallFlowSettings


def end_of_entry_key(handoff_digit: str) -> str:
    """`#` ends a keypad entry, unless `#` is the agent's hand-off key: then `*` does."""
    return "*" if handoff_digit == "#" else "#"


def entry_text(digits: str, language: str) -> str:
    """A keypad entry as the model reads it and the transcript stores it: what was pressed."""
    return phrases.line("keypad_entry", language).format(digits=digits)


def idle_seconds(settings: CallFlowSettings, agent: Agent) -> tuple[float, float]:
    """Caller silence before "are you still there?", then after it before the goodbye."""
    prompt = agent.idle_prompt_seconds or settings.idle_prompt_seconds
    goodbye = agent.idle_goodbye_seconds or settings.idle_goodbye_seconds
    return float(prompt), float(goodbye)
