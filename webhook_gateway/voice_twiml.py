"""The TwiML documents of the voice path, built with the `twilio` library's VoiceResponse.

Every URL Twilio is sent to is absolute (PUBLIC_BASE_URL), so the signature Twilio computes
over it is the one `twilio_signature` checks. Loop state (turn number, silent turns, collect
waits) travels in those URLs' query strings: signed by Twilio on the way back, and any
gateway instance can serve the next request.
"""

from __future__ import annotations

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

    def _url(self, path: str, **query: int) -> str:
        return f"{self.base_url}/twilio-voice{path}" + (f"?{urlencode(query)}" if query else "")

    def turn(self, turn: int, silent: int = 0) -> str:
        return self._url("/turn", turn=turn, silent=silent)

    def collect(self, turn: int, wait: int) -> str:
        return self._url("/collect", turn=turn, wait=wait)

    @property
    def recording_status(self) -> str:
        return self._url("/recording-status")

    @property
    def dial_status(self) -> str:
        return self._url("/dial-status")

    def handoff_status(self, resume_turn: int) -> str:
        return self._url("/handoff-status", turn=resume_turn)


@dataclass(frozen=True)
class GatherTuning:
    speech_timeout: int
    timeout: int
    speech_model: str | None

    @classmethod
    def from_settings(cls, settings: Settings) -> GatherTuning:
        return cls(
            speech_timeout=settings.voice.speech_timeout_seconds,
            timeout=settings.voice.gather_timeout_seconds,
            speech_model=settings.voice.speech_model,
        )


def _say(parent: VoiceResponse | Gather, locale: VoiceLocale, text: str) -> None:
    parent.say(text, voice=locale.say_voice, language=locale.say_language)


def say_and_listen(
    locale: VoiceLocale,
    text: str,
    *,
    action: str,
    tuning: GatherTuning,
    response: VoiceResponse | None = None,
) -> VoiceResponse:
    """Say `text` (the caller may barge in) and gather the next utterance at `action`.

    With actionOnEmptyResult Twilio posts to `action` even on silence; the `<Redirect>` to the
    same URL is the safety net should the gather end any other way.
    """
    response = response or VoiceResponse()
    extra: dict[str, str] = {}
    if tuning.speech_model:
        extra["speech_model"] = tuning.speech_model
    gather = response.gather(
        input="speech",
        action=action,
        method="POST",
        language=locale.gather_language,
        speech_timeout=str(tuning.speech_timeout),
        timeout=tuning.timeout,
        action_on_empty_result=True,
        **extra,
    )
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
    return say_and_listen(locale, text, action=links.turn(1), tuning=tuning, response=response)


def say_then_redirect(locale: VoiceLocale, text: str, url: str) -> VoiceResponse:
    """A short line, then fetch `url` (used while the model is still answering)."""
    response = VoiceResponse()
    _say(response, locale, text)
    response.redirect(url, method="POST")
    return response


def say_and_hang_up(locale: VoiceLocale, text: str) -> VoiceResponse:
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
