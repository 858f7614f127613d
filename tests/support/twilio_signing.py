"""Requests signed as Twilio signs them: the `twilio` library's RequestValidator, the test token."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from twilio.request_validator import RequestValidator

from tests.conftest import PUBLIC_BASE_URL, TWILIO_TEST_TOKEN


def sign(url: str, params: Mapping[str, str], token: str = TWILIO_TEST_TOKEN) -> str:
    """The X-Twilio-Signature Twilio sends for a form post of `params` to `url`."""
    signature: str = RequestValidator(token).compute_signature(url, params)
    return signature


async def post_signed(
    client: httpx.AsyncClient,
    url: str,
    params: dict[str, str],
    *,
    signed_url: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST `params` form-encoded to `url` (a gateway path or a full URL), signed for
    `signed_url` (default: `url`, on the public base URL when it is a path)."""
    if signed_url is None:
        signed_url = url if "://" in url else PUBLIC_BASE_URL + url
    all_headers = {"X-Twilio-Signature": sign(signed_url, params), **(headers or {})}
    return await client.post(url, data=params, headers=all_headers)
