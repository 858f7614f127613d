"""Twilio's REST API: the one client, built from Settings (base URL, credentials, timeouts).

Send SMS, fetch a recording, point a number's webhooks at us.
Failures raise the ProviderError tree (shared/errors.py), so callers decide by type: an HTTP
error status, a request that never left, or one that may have reached Twilio unanswered.

aiohttp rather than httpx: a reply's REST call is on the SMS hot path, and aiohttp costs far
less CPU per request (figures: bench/README.md).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from shared.errors import (
    ProviderConnectionError,
    ProviderError,
    ProviderStatusError,
    ProviderTimeoutError,
)
from shared.providers.retry import call_with_retries
from shared.providers.transport import TRANSPORT_ERRORS, never_sent
from shared.settings import Settings

logger = logging.getLogger("shared.providers.twilio_rest")

_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
API_VERSION = "2010-04-01"


@dataclass(frozen=True)
class Answer:
    """A response from Twilio, read whole."""

    status: int
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


@dataclass(frozen=True)
class SentMessage:
    sid: str
    status: str
    num_segments: int | None


@dataclass(frozen=True)
class ListedMessage:
    """A message of Twilio's message list, its fields bounded (it is a provider's answer)."""

    sid: str
    to: str
    from_: str
    body: str
    status: str
    date_created: str  # RFC 2822, as Twilio writes it


class TwilioRest:
    def __init__(self, settings: Settings, *, attempts: int = 3, backoff: float = 0.5) -> None:
        settings.require("twilio.account_sid", "twilio.auth_token")
        assert settings.twilio.account_sid and settings.twilio.auth_token
        self.account_sid = settings.twilio.account_sid
        self.base_url = settings.twilio.api_base_url
        self._delays = [backoff * 2**attempt for attempt in range(attempts - 1)]
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=5.0, sock_read=settings.twilio.timeout_seconds
            ),
            headers={
                "Authorization": aiohttp.encode_basic_auth(
                    settings.twilio.account_sid, settings.twilio.auth_token
                ),
                "User-Agent": "wassla-voice",
            },
        )

    async def aclose(self) -> None:
        await self._http.close()

    def _account_url(self, path: str) -> str:
        return f"{self.base_url}/{API_VERSION}/Accounts/{self.account_sid}/{path}"

    async def _request(
        self,
        method: str,
        url: str,
        *,
        data: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        retry: bool = True,
    ) -> Answer:
        return await call_with_retries(
            lambda: self._attempt(method, url, data=data, params=params),
            delays=self._delays if retry else (),
        )

    async def _attempt(
        self,
        method: str,
        url: str,
        *,
        data: dict[str, str] | None,
        params: dict[str, str] | None,
    ) -> Answer:
        try:
            async with self._http.request(
                method, url, data=data, params=params, allow_redirects=False
            ) as response:
                answer = Answer(response.status, await response.read())
        except TRANSPORT_ERRORS as exc:
            if never_sent(exc):
                raise ProviderConnectionError(f"Twilio unreachable: {exc!r}") from exc
            raise ProviderTimeoutError(f"Twilio gave no whole answer: {exc!r}") from exc
        if answer.status >= 400:
            message, code = _error_detail(answer)
            raise ProviderStatusError(
                f"Twilio {method} {urlsplit(url).path} -> {answer.status}: {message}",
                status=answer.status,
                retryable=answer.status in _RETRYABLE_STATUS,
                body=message,
                code=code,
            )
        return answer

    async def send_message(
        self, *, to: str, from_: str, body: str, status_callback: str | None
    ) -> SentMessage:
        """Create an outbound message. Not retried: a retry after a lost response could send
        twice; the caller persists the pending send and decides."""
        data = {"To": to, "From": from_, "Body": body}
        if status_callback:
            data["StatusCallback"] = status_callback
        response = await self._request("POST", self._account_url("Messages.json"), data=data,
                                       retry=False)  # fmt: skip
        payload: dict[str, Any] = response.json()
        segments = payload.get("num_segments")
        return SentMessage(
            sid=str(payload["sid"]),
            status=str(payload.get("status", "queued")),
            num_segments=int(segments) if segments not in (None, "", "0") else None,
        )

    async def list_messages(self, *, to: str, from_: str, limit: int = 50) -> list[ListedMessage]:
        """The newest messages sent from `from_` to `to` (Twilio lists newest first)."""
        response = await self._request(
            "GET",
            self._account_url("Messages.json"),
            params={"To": to, "From": from_, "PageSize": str(max(1, min(limit, 1000)))},
        )
        payload = response.json()
        listed = payload.get("messages") if isinstance(payload, dict) else None
        if not isinstance(listed, list):
            raise ProviderError("Twilio's message list has no 'messages'", retryable=False)
        return [_listed(item) for item in listed[:limit] if isinstance(item, dict)]

    def is_twilio_url(self, url: str) -> bool:
        """Only fetch media from Twilio's own API host: never send our credentials elsewhere."""
        ours, theirs = urlsplit(self.base_url), urlsplit(url)
        return (ours.scheme, ours.netloc) == (theirs.scheme, theirs.netloc)

    async def fetch_recording(self, recording_url: str, *, extension: str = "wav") -> bytes:
        if not self.is_twilio_url(recording_url):
            raise ProviderError(f"refusing to fetch a recording from {recording_url!r}",
                                retryable=False)  # fmt: skip
        url = (
            recording_url
            if recording_url.endswith(f".{extension}")
            else (f"{recording_url}.{extension}")
        )
        response = await self._request("GET", url)
        return response.content

    async def configure_number(self, phone_number: str, *, fields: dict[str, str]) -> str:
        """Set a number's webhook URLs; returns the number's sid (PN...)."""
        response = await self._request(
            "GET",
            self._account_url("IncomingPhoneNumbers.json"),
            params={"PhoneNumber": phone_number},
        )
        numbers = response.json().get("incoming_phone_numbers", [])
        if not numbers:
            # Twilio's 404 in all but name, so callers treat both alike.
            raise ProviderStatusError(
                f"{phone_number} is not a number of this Twilio account", status=404,
                retryable=False,
            )  # fmt: skip
        sid = str(numbers[0]["sid"])
        await self._request("POST", self._account_url(f"IncomingPhoneNumbers/{sid}.json"),
                            data=fields)  # fmt: skip
        return sid


def _listed(item: dict[str, Any]) -> ListedMessage:
    return ListedMessage(
        sid=str(item.get("sid", ""))[:64],
        to=str(item.get("to", ""))[:32],
        from_=str(item.get("from", ""))[:32],
        body=str(item.get("body", ""))[:1600],
        status=str(item.get("status", ""))[:32],
        date_created=str(item.get("date_created", ""))[:64],
    )


def _error_detail(answer: Answer) -> tuple[str, int | None]:
    """The error's text and Twilio's error code, from its JSON ({"code", "message", ...})."""
    try:
        body = answer.json()
    except ValueError:
        return answer.content[:200].decode("utf-8", "replace"), None
    if not isinstance(body, dict):
        return str(body)[:200], None
    code = body.get("code")
    # Twilio sends the code as a number; anything else names no code we could act on.
    known = code if isinstance(code, int) and not isinstance(code, bool) else None
    return f"{code} {body.get('message')}", known
