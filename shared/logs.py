"""Log lines an operator can use: one JSON object a line, every `extra=` field kept.

Every process (`python -m webhook_gateway`, `python -m sms_sender`, `python -m worker`) calls
`configure_logging` once at start-up instead of `logging.basicConfig`. A line carries
`timestamp` (UTC, ISO 8601), `level`, `logger`, `event` (the message: `sms.reply_sent`),
`service` and `pid`, then every field the call site gave in `extra={...}` (`message_sid`,
`call_sid`, `reply_id`, `workspace`, `conversation`, ...) and, for a record with an exception,
`error_type`, `error` and `traceback`. In a development terminal (`WASSLA_ENV=development` and
stderr a TTY) the same fields are plain text, `key=value`; `LOG_FORMAT=json|text` overrides.

uvicorn's and livekit-agents' records go through the same handler on the root logger, so they
come out in the same shape. No configured secret (Twilio auth token, JWT secret, OpenAI key,
LiveKit secret, S3 secret, SIP password, the database password) reaches a line: each
formatted line is scrubbed of them, whatever field or traceback they came in, and of the
credentials a URL may carry (a signed recording link's `signature=`, `token=`).

The library is python-json-logger rather than structlog: this code, uvicorn and
livekit-agents all log through stdlib `logging` with `extra=`, and python-json-logger is a
plain `logging.Formatter` that serialises a record's extra attributes as they are, so no call
site changes and the frameworks' records need no bridge. structlog would add a second logging
API and its ProcessorFormatter to get the same from stdlib records.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from pythonjsonlogger.core import RESERVED_ATTRS, merge_record_extra
from pythonjsonlogger.json import JsonEncoder, JsonFormatter

from shared.errors import MissingSetting
from shared.settings import Process, Settings

LogFormat = Literal["json", "text"]
REDACTED = "[redacted]"
# Shorter values are placeholders, not secrets; scrubbing them would garble every line.
_MIN_SECRET_LENGTH = 8
# Record attributes that are not fields: the LogRecord's own, and uvicorn's coloured copy
# of the message.
_SKIP = frozenset({*RESERVED_ATTRS, "taskName", "color_message"})
_MARK = "_wassla_handler"  # set on the handler configure_logging installs
# Credentials carried in a URL's query (the access log's path): signed recording links,
# S3 presigned links, tokens.
_URL_CREDENTIAL = re.compile(
    r"\b(signature|token|access_token|X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token)"
    r"=[^&\s\"]+",
    re.IGNORECASE,
)


def secrets_of(settings: Settings) -> list[str]:
    """The configured secret values no log line may carry."""
    values = [
        settings.twilio.auth_token,
        settings.jwt_secret,
        settings.openai.api_key,
        settings.livekit.api_secret,
        settings.livekit.sip_auth_password,
        settings.livekit.sip_outbound_auth_password,
        settings.s3.secret_access_key,
    ]
    if settings.database_url:
        values.append(urlsplit(settings.database_url).password)
    return sorted({v for v in values if v and len(v) >= _MIN_SECRET_LENGTH}, key=len, reverse=True)


def chosen_format(settings: Settings, stream: Any = None) -> LogFormat:
    """JSON, unless LOG_FORMAT says otherwise or a developer reads a terminal."""
    if settings.log_format != "auto":
        return settings.log_format
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    tty = bool(isatty()) if callable(isatty) else False
    return "text" if settings.env == "development" and tty else "json"


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _event(record: logging.LogRecord) -> str:
    message = record.getMessage()
    # A record forwarded from a livekit-agents job process arrives with its traceback
    # already appended to the message (and in exc_text): keep it in its own field only.
    if record.exc_text and message.endswith(record.exc_text):
        message = message[: -len(record.exc_text)].rstrip("\n")
    return message


def record_fields(record: logging.LogRecord, service: str) -> dict[str, Any]:
    """Everything a line says about `record`, in the order it is written."""
    fields: dict[str, Any] = {
        "timestamp": _timestamp(record),
        "level": record.levelname,
        "logger": record.name,
        "event": _event(record),
        "service": service,
        "pid": record.process,
    }
    if record.name == "uvicorn.access" and isinstance(record.args, tuple):
        if len(record.args) == 5:  # client, method, path, HTTP version, status
            client, method, path, _, status = record.args
            fields.update(client=client, method=method, path=path, status=status)
    merge_record_extra(record, fields, reserved=_SKIP)
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        kind = type(exc)
        fields["error_type"] = (
            kind.__qualname__
            if kind.__module__ == "builtins"
            else f"{kind.__module__}.{kind.__qualname__}"
        )
        fields.setdefault("error", str(exc))
        fields["traceback"] = logging.Formatter().formatException(record.exc_info)
    elif record.exc_text:
        # Forwarded from another process: only the text is left; its last line names it.
        last = record.exc_text.rstrip().rsplit("\n", 1)[-1]
        error_type, _, message = last.partition(": ")
        fields["error_type"] = error_type
        fields.setdefault("error", message)
        fields["traceback"] = record.exc_text
    if record.stack_info:
        fields["stack_info"] = record.stack_info
    return fields


class _Scrubber:
    """Takes every configured secret out of a formatted line."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # As written in text, and as JSON escapes it (a quote or backslash in a secret).
        spelled = {form for s in secrets for form in (s, json.dumps(s)[1:-1])}
        self._secrets = sorted(spelled, key=len, reverse=True)

    def __call__(self, line: str) -> str:
        for secret in self._secrets:
            if secret in line:
                line = line.replace(secret, REDACTED)
        return _URL_CREDENTIAL.sub(rf"\1={REDACTED}", line)


class JsonLineFormatter(JsonFormatter):  # type: ignore[misc]
    """One JSON object a record (python-json-logger does the serialising)."""

    def __init__(self, service: str, secrets: Iterable[str] = ()) -> None:
        super().__init__(json_ensure_ascii=False)
        self.service = service
        self.scrub = _Scrubber(secrets)

    def format(self, record: logging.LogRecord) -> str:
        fields = record_fields(record, self.service)
        return self.scrub(self.jsonify_log_record(fields))


class TextLineFormatter(logging.Formatter):
    """`time level logger event key=value ...`, the traceback on the lines after."""

    def __init__(self, service: str, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.service = service
        self.scrub = _Scrubber(secrets)

    def format(self, record: logging.LogRecord) -> str:
        fields = record_fields(record, self.service)
        head = " ".join(
            [fields.pop("timestamp"), f"{fields.pop('level'):<7}", fields.pop("logger")]
            + [fields.pop("event")]
        )
        for key in ("service", "pid"):
            fields.pop(key)
        tail = [fields.pop(key) for key in ("traceback", "stack_info") if key in fields]
        pairs = " ".join(f"{key}={_text_value(value)}" for key, value in fields.items())
        line = f"{head} {pairs}" if pairs else head
        return self.scrub("\n".join([line, *tail]))


def _text_value(value: object) -> str:
    if isinstance(value, str):
        return (
            value
            if value and not any(c.isspace() or c in "\"='" for c in value)
            else (json.dumps(value, ensure_ascii=False))
        )
    return json.dumps(value, cls=JsonEncoder, ensure_ascii=False)


def make_formatter(settings: Settings, service: str, fmt: LogFormat) -> logging.Formatter:
    secrets = secrets_of(settings)
    if fmt == "text":
        return TextLineFormatter(service, secrets)
    return JsonLineFormatter(service, secrets)


def configure_logging(settings: Settings, process: str, *, stream: Any = None) -> None:
    """Send every record (ours, uvicorn's, livekit-agents') to stderr in one format.

    Replaces the console handlers already on the root logger (a `basicConfig`, livekit-agents'
    own stdout handler, an earlier call of this), so calling it again is safe.
    """
    stream = sys.stderr if stream is None else stream
    handler = logging.StreamHandler(stream)
    handler.setFormatter(make_formatter(settings, process, chosen_format(settings, stream)))
    setattr(handler, _MARK, True)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, _MARK, False) or (
            type(old) is logging.StreamHandler and old.stream in (sys.stdout, sys.stderr)
        ):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)


def settings_for(process: Process, *, logger: logging.Logger, event: str) -> Settings | None:
    """A process's start: its Settings read, logging configured, what it needs checked.

    None when something is missing: one `event` line names it, and the caller exits 2."""
    settings = Settings()
    configure_logging(settings, process)
    try:
        settings.check_process(process)
    except MissingSetting as exc:
        logger.error(event, extra={"error": str(exc)})
        return None
    return settings
