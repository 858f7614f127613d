"""The TwiML documents of the voice path, built with the `twilio` library's VoiceResponse.

Every URL Twilio is sent to is absolute (PUBLIC_BASE_URL), so the signature Twilio computes
over it is the one `twilio_signature` checks. Loop state (turn number, silent turns, collect
waits) travels in those URLs' query strings: signed by Twilio on the way back, and any
gateway instance can serve the next request.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from urllib.parse import urlencode

from twilio.twiml.voice_response import Dial, Gather, VoiceResponse

from shared.providers.livekit_sip import CALL_SID_HEADER
from shared.settings import Settings
from webhook_gateway.voice_languages import VoiceLocale

# <Dial action> outcomes that mean the SIP leg really carried the call.
SIP_LEG_ANSWERED = frozenset({"completed", "answered"})


@dataclass(frozen=True)
class VoiceLinks:
    """The absolute URLs of the voice routes."""

    base_url: str

    def _url(self, path: str, **query: int | str) -> str:
        return f"{self.base_url}/twilio-voice{path}" + (f"?{urlencode(query)}" if query else "")

    def turn(self, turn: int, silent: int = 0, failed: int = 0) -> str:
        # `failed` (model failures in a row) only when there are some: URLs stay short.
        extra = {"failed": failed} if failed else {}
        return self._url("/turn", turn=turn, silent=silent, **extra)

    def collect(self, turn: int, wait: int, failed: int = 0) -> str:
        extra = {"failed": failed} if failed else {}
        return self._url("/collect", turn=turn, wait=wait, **extra)

    @property
    def recording_status(self) -> str:
        return self._url("/recording-status")

    @property
    def dial_status(self) -> str:
        return self._url("/dial-status")

    def handoff_status(self, resume_turn: int, *, warm: bool = False) -> str:
        extra = {"warm": 1} if warm else {}
        return self._url("/handoff-status", turn=resume_turn, **extra)

    def whisper(self, call_sid: str, turn: int) -> str:
        """What the person who answers a warm hand-off hears (their leg; the caller's CallSid
        rides in the URL Twilio signs, so the route knows whose call it is)."""
        return self._url("/whisper", call=call_sid, turn=turn)

    def whisper_answer(self, call_sid: str, turn: int) -> str:
        return self._url("/whisper-answer", call=call_sid, turn=turn)


@dataclass(frozen=True)
class GatherTuning:
    """How every `<Gather>` of the loop listens.

    `timeout` is Twilio's one wait for input: before the first word or key, and between keys.
    It is the keypad's inter-digit pause (settings.calls.keypad_digit_timeout_seconds), so an
    entry ends soon after the last key; a silence is then made of several such waits, and the
    loop counts them against the idle timers (voice_loop.IdleRule).
    """

    speech_timeout: int
    timeout: int
    speech_model: str | None

    @classmethod
    def from_settings(cls, settings: Settings) -> GatherTuning:
        return cls(
            speech_timeout=settings.voice.speech_timeout_seconds,
            timeout=max(1, math.ceil(settings.calls.keypad_digit_timeout_seconds)),
            speech_model=settings.voice.speech_model,
        )


def _say(parent: VoiceResponse | Gather, locale: VoiceLocale, text: str) -> None:
    parent.say(text, voice=locale.say_voice, language=locale.say_language)


def say_and_listen(
    locale: VoiceLocale,
    text: str | None,
    *,
    action: str,
    tuning: GatherTuning,
    finish_on_key: str = "#",
    response: VoiceResponse | None = None,
) -> VoiceResponse:
    """Say `text` (the caller may barge in; None: listen quietly) and gather the next
    utterance or keypad entry at `action`.

    With actionOnEmptyResult Twilio posts to `action` even on silence; the `<Redirect>` to the
    same URL is the safety net should the gather end any other way.
    """
    response = response or VoiceResponse()
    extra: dict[str, str] = {}
    if tuning.speech_model:
        extra["speech_model"] = tuning.speech_model
    gather = response.gather(
        input="dtmf speech",
        action=action,
        method="POST",
        language=locale.gather_language,
        speech_timeout=str(tuning.speech_timeout),
        timeout=tuning.timeout,
        finish_on_key=finish_on_key,
        action_on_empty_result=True,
        **extra,
    )
    if text:
        _say(gather, locale, text)
    response.redirect(action, method="POST")
    return response


def greeting(
    locale: VoiceLocale,
    text: str,
    *,
    links: VoiceLinks,
    tuning: GatherTuning,
    record: bool,
    finish_on_key: str = "#",
) -> VoiceResponse:
    """The first answer of the loop: start recording the whole call, greet, listen."""
    response = VoiceResponse()
    if record:
        start = response.start()
        start.recording(
            recording_status_callback=links.recording_status,
            recording_status_callback_method="POST",
            recording_status_callback_event="completed absent",
            channels="dual",
            track="both",
        )
    return say_and_listen(
        locale, text, action=links.turn(1), tuning=tuning, finish_on_key=finish_on_key,
        response=response,
    )  # fmt: skip


def say_then_redirect(locale: VoiceLocale, text: str, url: str) -> VoiceResponse:
    """A short line, then fetch `url` (used while the model is still answering)."""
    response = VoiceResponse()
    _say(response, locale, text)
    response.redirect(url, method="POST")
    return response


def say_and_hang_up(locale: VoiceLocale, text: str) -> VoiceResponse:
    """A goodbye, then the hang-up, in one document: Twilio plays a `<Say>` to its end before
    the next verb, so the caller hears the whole line before the line drops."""
    response = VoiceResponse()
    _say(response, locale, text)
    response.hangup()
    return response


def reject() -> VoiceResponse:
    """Refuse the call before it is answered (nothing is billed to the caller)."""
    response = VoiceResponse()
    response.reject()
    return response


def hang_up() -> VoiceResponse:
    response = VoiceResponse()
    response.hangup()
    return response


def livekit_sip_uri(sip_uri: str, called_number: str, call_sid: str) -> str:
    """`LIVEKIT_SIP_URI` with the called number as user part and the CallSid as an X- header.

    `sip:host;transport=tcp` -> `sip:+15551234567@host;transport=tcp?X-Wassla-Call-Sid=CA..`;
    a user part already in the setting is replaced, existing headers are kept.
    """
    uri = sip_uri.strip()
    scheme = "sips" if uri.lower().startswith("sips:") else "sip"
    rest = re.sub(r"^sips?:", "", uri, flags=re.IGNORECASE)
    rest, _, headers = rest.partition("?")
    host_part = rest.split("@", 1)[1] if "@" in rest else rest
    header_list = [h for h in headers.split("&") if h and not h.startswith(f"{CALL_SID_HEADER}=")]
    header_list.append(f"{CALL_SID_HEADER}={call_sid}")
    return f"{scheme}:{called_number}@{host_part}?" + "&".join(header_list)


def dial_livekit(
    sip_uri: str, *, action: str, username: str | None = None, password: str | None = None
) -> VoiceResponse:
    """Bridge the caller into LiveKit; `action` hears how the SIP leg ended.

    With credentials, Twilio answers the trunk's digest challenge with them.
    """
    response = VoiceResponse()
    dial = Dial(action=action, method="POST", answer_on_bridge=True)
    if username and password:
        dial.sip(sip_uri, username=username, password=password)
    else:
        dial.sip(sip_uri)
    response.append(dial)
    return response


def dial_person(locale: VoiceLocale, text: str, number: str, *, action: str) -> VoiceResponse:
    """Say we are connecting, then ring the agent's hand-off number."""
    response = VoiceResponse()
    _say(response, locale, text)
    response.dial(number, action=action, method="POST")
    return response


# How long the person who answers a warm hand-off has to press 1 after the prompt.
ACCEPT_WAIT_SECONDS = 6


def dial_person_warm(
    locale: VoiceLocale,
    text: str,
    number: str,
    *,
    action: str,
    whisper_url: str,
    ring_seconds: int,
) -> VoiceResponse:
    """Say the hold line, then ring the person; their leg runs `whisper_url` first (the
    summary and accept-or-decline) and only then is bridged to the caller."""
    response = VoiceResponse()
    _say(response, locale, text)
    dial = Dial(action=action, method="POST", timeout=ring_seconds)
    dial.number(number, url=whisper_url, method="POST")
    response.append(dial)
    return response


def whisper(locale: VoiceLocale, lines: list[str], *, action: str) -> VoiceResponse:
    """The person's leg: the briefing and one key to accept; silence hangs their leg up."""
    response = VoiceResponse()
    gather = response.gather(
        input="dtmf", num_digits=1, action=action, method="POST",
        timeout=ACCEPT_WAIT_SECONDS, action_on_empty_result=True,
    )  # fmt: skip
    for text in lines:
        if text:
            _say(gather, locale, text)
    response.hangup()
    return response
