"""Twilio's REST API: the one client, built from Settings (base URL, credentials, timeouts).

Send SMS, fetch a recording, point a number's webhooks at us.
Failures raise ProviderError with `retryable` set, so callers decide without string matching;
its `__cause__` is the transport error, if any (NOT_SENT_ERRORS: the request never left).

aiohttp rather than httpx: a reply's REST call is on the SMS hot path, and aiohttp costs far
less CPU per request (figures: bench/README.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from shared.errors import ProviderError
from shared.settings import Settings

logger = logging.getLogger("shared.providers.twilio_rest")

_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
API_VERSION = "2010-04-01"
# Transport errors raised before a request could reach Twilio: trying again cannot send twice.
NOT_SENT_ERRORS = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
_TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError)


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


class TwilioRest:
    def __init__(self, settings: Settings, *, attempts: int = 3, backoff: float = 0.5) -> None:
        settings.require("twilio_account_sid", "twilio_auth_token")
        assert settings.twilio_account_sid and settings.twilio_auth_token
        self.account_sid = settings.twilio_account_sid
        self.base_url = settings.twilio_api_base_url
        self._attempts = attempts
        self._backoff = backoff
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=5.0, sock_read=settings.twilio_timeout_seconds
            ),
            headers={
                "Authorization": aiohttp.encode_basic_auth(
                    settings.twilio_account_sid, settings.twilio_auth_token
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
        attempts = self._attempts if retry else 1
        for attempt in range(1, attempts + 1):
            try:
                async with self._http.request(
                    method, url, data=data, params=params, allow_redirects=False
                ) as response:
                    answer = Answer(response.status, await response.read())
            except _TRANSPORT_ERRORS as exc:
                if attempt == attempts:
                    raise ProviderError(f"Twilio unreachable: {exc!r}", retryable=True) from exc
            else:
                if answer.status < 400:
                    return answer
                retryable = answer.status in _RETRYABLE_STATUS
                if not retryable or attempt == attempts:
                    raise ProviderError(
                        f"Twilio {method} {urlsplit(url).path} -> {answer.status}: "
                        f"{_error_message(answer)}",
                        retryable=retryable,
                        status=answer.status,
                    )
            await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

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
            raise ProviderError(
                f"{phone_number} is not a number of this Twilio account", retryable=False,
                status=404,
            )  # fmt: skip
        sid = str(numbers[0]["sid"])
        await self._request("POST", self._account_url(f"IncomingPhoneNumbers/{sid}.json"),
                            data=fields)  # fmt: skip
        return sid


def _error_message(answer: Answer) -> str:
    try:
        body = answer.json()
    except ValueError:
        return answer.content[:200].decode("utf-8", "replace")
    if not isinstance(body, dict):
        return str(body)[:200]
    return f"{body.get('code')} {body.get('message')}"
