"""Every Twilio webhook passes through here: size and type checks, parsing, signature check.

The signature is checked with the `twilio` library's RequestValidator against
PUBLIC_BASE_URL + path + the raw query string: behind Fly's TLS proxy the URL the request
arrives on is not the one Twilio signed. Repeated form keys are kept (they are signed too).
Field names must look like Twilio's (twilio_fields.py): the signature alone does not fix
where one field ends and the next begins.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Annotated, Any
from urllib.parse import parse_qs, unquote, urlsplit

from fastapi import Depends, HTTPException, Request
from twilio.request_validator import RequestValidator, compare, get_signature_algorithm

from webhook_gateway import twilio_fields
from webhook_gateway.deps import SettingsDep

logger = logging.getLogger("webhook_gateway.twilio")

MAX_BODY_BYTES = 256 * 1024  # an SMS with 10 media URLs is ~5 KB; anything near this is abuse
_FORM = "application/x-www-form-urlencoded"
_JSON = "application/json"


class TwilioRequest:
    """A webhook Twilio really sent: its form fields (or JSON body) and the URL it signed."""

    __slots__ = ("_last", "fields", "json_body", "url")

    def __init__(self, fields: list[tuple[str, str]], json_body: Any, url: str) -> None:
        self.fields = fields  # in order, repeated keys kept; none for a JSON body
        self.json_body = json_body
        self.url = url
        self._last = dict(fields)  # a repeated key's last value, as a form's get gives

    def get(self, name: str, default: str = "") -> str:
        return self._last.get(name, default)


class _SignedParams(dict[str, list[str]]):
    """The form as RequestValidator reads it: every value of a key, found in one lookup.

    The validator asks for `getall(name)` once per key and per URL variant it tries; a
    starlette FormData answers that by scanning every field (quadratic in the form), a
    plain dict by raising and catching two AttributeErrors per key first."""

    def getall(self, name: str) -> list[str]:
        return self[name]


@functools.lru_cache(maxsize=8)
def _validator(auth_token: str) -> RequestValidator:
    return RequestValidator(auth_token)


def parse_form(text: str) -> tuple[list[tuple[str, str]], _SignedParams]:
    """A form body's fields, as parse_qsl(text, keep_blank_values=True, strict_parsing=True)
    gives them, and the same grouped by key for the validator. Only fields with a `+` or a
    `%` are decoded: the others (most of Twilio's) cost no unquote. ValueError when malformed.
    """
    fields: list[tuple[str, str]] = []
    params = _SignedParams()
    if not text:
        return fields, params
    for field in text.split("&"):
        name, equals, value = field.partition("=")
        if not equals:
            raise ValueError(f"bad form field: {field!r}")
        if "+" in name or "%" in name:
            name = unquote(name.replace("+", " "))
        if "+" in value or "%" in value:
            value = unquote(value.replace("+", " "))
        fields.append((name, value))
        params.setdefault(name, []).append(value)
    return fields, params


def _form_signature_valid(
    validator: RequestValidator, url: str, params: _SignedParams, signature: str, algorithm: str
) -> bool:
    """RequestValidator.validate for a form body, trying the URL exactly as requested first.

    validate parses the URL three times and always computes two signatures, for the URL
    with and without its default port (Twilio is inconsistent about which it signs). The
    URL as requested is what Twilio signed in the usual case, so one compute_signature
    settles it; only a mismatch pays for validate's full check."""
    try:
        if compare(validator.compute_signature(url, params, algorithm), signature):
            return True
    except ValueError:
        pass  # an unsupported algorithm: validate logs it and refuses
    return bool(validator.validate(url, params, signature, algorithm))


def signed_url(public_base_url: str, request: Request) -> str:
    """The URL Twilio signed: our public base, the path, and the query exactly as sent."""
    scope = request.scope
    query = scope.get("query_string", b"").decode("latin-1")
    path: str = scope.get("root_path", "") + scope["path"]
    return public_base_url + path + (f"?{query}" if query else "")


def _body_hash_param(url: str) -> bool:
    """Whether the URL has a non-empty `bodySHA256` query parameter.

    Exactly the validator's own test (parse_qs drops blank values): any other URL makes it
    sign the JSON text as if it were a form, and it raises TypeError instead of refusing."""
    return bool(parse_qs(urlsplit(url).query).get("bodySHA256"))


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise HTTPException(status_code=413, detail="request body too large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(status_code=413, detail="request body too large")
    return bytes(body)


async def verified_twilio_request(request: Request, settings: SettingsDep) -> TwilioRequest:
    """A parsed, signature-checked Twilio webhook, or a 4xx before anything is written."""
    if not settings.twilio.auth_token:
        logger.error("twilio.auth_token_missing")
        raise HTTPException(status_code=503, detail="TWILIO_AUTH_TOKEN is not configured")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in (_FORM, _JSON):
        raise HTTPException(status_code=415, detail="expected a form or JSON body")
    body = await _read_body(request)
    url = signed_url(settings.public_base_url, request)
    signature = request.headers.get("x-twilio-signature", "")
    validator = _validator(settings.twilio.auth_token)
    algorithm = get_signature_algorithm(request.headers.get("x-twilio-webhooks-signature-settings"))
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(status_code=400, detail="body is not UTF-8") from None

    json_body: Any = None
    if content_type == _JSON:
        if not _body_hash_param(url):
            raise HTTPException(status_code=403, detail="JSON webhooks must carry bodySHA256")
        valid = bool(signature) and validator.validate(url, text, signature, algorithm)
        if valid:
            try:
                json_body = json.loads(text)
            except ValueError:
                raise HTTPException(status_code=400, detail="malformed JSON body") from None
        fields: list[tuple[str, str]] = []
    else:
        try:
            fields, params = parse_form(text)
        except ValueError:
            raise HTTPException(status_code=400, detail="malformed form body") from None
        valid = bool(signature) and _form_signature_valid(
            validator, url, params, signature, algorithm
        )
    if not valid:
        logger.warning(
            "twilio.signature_rejected",
            extra={"path": request.url.path, "has_signature": bool(signature)},
        )
        raise HTTPException(status_code=403, detail="invalid Twilio signature")
    twilio_fields.check_names(name for name, _ in fields)
    return TwilioRequest(fields, json_body, url)


TwilioRequestDep = Annotated[TwilioRequest, Depends(verified_twilio_request)]
