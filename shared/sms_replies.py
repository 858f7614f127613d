"""Generate and send the AI replies queued in the SMS outbox, after Twilio was acknowledged.

One task per reply: history -> text-chat pipeline -> (still allowed?) -> `sending` ->
Twilio REST -> `sent`. A sweeper resumes what a stopped process left: at start-up and then
periodically (settings.sms.sweep_interval_seconds) it takes over pending rows whose lease
expired and marks rows stuck in `sending` as `unknown` (see shared/sms_outbox.py for why
those are never re-sent). Leases are short; a heartbeat renews those this process holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from typing import Any

import regex

from shared import admission, agents, conversations, metrics, opt_outs, sms_outbox, text_chat
from shared.errors import (
    NotFound,
    ProviderConnectionError,
    ProviderError,
    ProviderStatusError,
)
from shared.pg import UNAVAILABLE_ERRORS, Connection
from shared.providers.chat import ChatFailed
from shared.providers.retry import call_with_retries
from shared.providers.twilio_rest import SentMessage
from shared.services import Services
from shared.sms_outbox import Claim, OutboxReply
from shared.text_chat import Prompt
from shared.text_safety import xml_safe

logger = logging.getLogger("webhook_gateway.sms")

MAX_BODY_CHARS = 1600  # Twilio refuses longer bodies (21617)
STATUS_PATH = "/twilio-sms/status"
_GRAPHEME = regex.compile(r"\X")


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def fit_body(text: str, limit: int = MAX_BODY_CHARS) -> str:
    """Cut a reply to Twilio's limit without splitting an emoji or a letter from its marks.

    Counted in UTF-16 code units (an emoji is two), the stricter reading of the limit."""
    if _units(text) <= limit:
        return text
    kept: list[str] = []
    size = 0
    for grapheme in _GRAPHEME.findall(text):
        if size + _units(grapheme) > limit - 1:
            break
        kept.append(grapheme)
        size += _units(grapheme)
    return "".join(kept).rstrip() + "…"


def reply_signature(auth_token: str, reply_id: str) -> str:
    """What proves a status callback is for `reply_id`: an HMAC only we (and Twilio, who
    only ever echoes the URL) hold. Twilio's own signature does not: text can move between
    the signed URL and the first field's name (`?reply=10` becomes `?reply=1` + `0AccountSid`)."""
    key = hmac.new(auth_token.encode(), b"wassla sms status callback", hashlib.sha256).digest()
    return hmac.new(key, reply_id.encode(), hashlib.sha256).hexdigest()[:32]


def reply_signature_valid(auth_token: str, reply_id: str, signature: str) -> bool:
    # As bytes: compare_digest raises on a str with non-ASCII characters.
    return hmac.compare_digest(reply_signature(auth_token, reply_id).encode(), signature.encode())


def status_callback_url(public_base_url: str, reply_id: int, auth_token: str) -> str:
    """Where Twilio reports a reply's delivery; the signature comes last, so no text can be
    moved off the end of the URL without breaking it."""
    sig = reply_signature(auth_token, str(reply_id))
    return f"{public_base_url}{STATUS_PATH}?reply={reply_id}&sig={sig}"


class SmsReplier:
    """Owns reply tasks (through the gateway state) and the outbox sweeper."""

    def __init__(
        self,
        services: Services,
        *,
        sweep_interval_seconds: float | None = None,
        retry_delays: tuple[float, ...] = (1.0, 4.0),
        max_reply_age_seconds: float = 3600.0,
        max_concurrent_replies: int = 16,
    ) -> None:
        self.services = services
        settings = services.settings
        # A claim lapses this long after its holder last renewed it (the heartbeat renews
        # every claim this process holds each lease / 3): a dead process's replies are taken
        # over within seconds, while a live one keeps them however long the model takes.
        self.lease_seconds = settings.sms.lease_seconds
        # A row still `sending` this long after the call began lost its process (even if
        # something still renews its lease).
        self.stale_sending_seconds = settings.twilio.timeout_seconds + 30
        self.sweep_interval_seconds = (
            settings.sms.sweep_interval_seconds
            if sweep_interval_seconds is None
            else sweep_interval_seconds
        )
        self._held: set[Claim] = set()  # claims of the replies this process works on
        self._heartbeat: asyncio.Task[None] | None = None
        self._none_held = asyncio.Event()
        self.retry_delays = retry_delays
        self.max_reply_age_seconds = max_reply_age_seconds
        self._sweeper: asyncio.Task[None] | None = None
        # Replies wait their turn so acknowledgements keep the event loop under a burst; the
        # backlog is safe in the outbox meanwhile. Each reply mostly waits on the model, so
        # this also caps one process's reply rate (about slots / model seconds).
        self.max_concurrent_replies = max_concurrent_replies
        self._slots = asyncio.Semaphore(max_concurrent_replies)
        self._in_flight = 0
        self._wake = asyncio.Event()
        self._stopping = False
        self.listening = False  # worker mode: woken by the gateways' NOTIFY right now

    # --- inline mode: the gateway process sends the replies it acknowledged ----------------

    async def start(self) -> None:
        """Resume what a previous process left, then keep sweeping in the background."""
        try:
            await self.sweep_once()
        except UNAVAILABLE_ERRORS as exc:
            logger.warning("sms.sweep_failed", extra={"error": repr(exc)})
            metrics.DATABASE_UNAVAILABLE.labels("sms_replies").inc()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="sms-outbox-sweeper")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval_seconds)
            try:
                await self.sweep_once()
            except Exception:
                logger.exception("sms.sweep_failed")

    # --- worker mode: a separate process sends what gateways queued ------------------------

    async def work(self, *, poll_seconds: float = 1.0) -> None:
        """Send queued replies until `request_stop`: woken by the gateways' NOTIFY on each
        queued reply and by a freed slot, polling as a fallback (a lost notification, a
        dropped listener connection)."""
        last_housekeeping = float("-inf")
        loop = asyncio.get_running_loop()
        async with self.services.pool.acquire() as listener:
            await listener.add_listener(sms_outbox.NOTIFY_CHANNEL, self._notified)
            self.listening = True
            try:
                while not self._stopping:
                    self._wake.clear()
                    try:
                        if loop.time() - last_housekeeping >= self.sweep_interval_seconds:
                            await self._housekeeping()
                            last_housekeeping = loop.time()
                        await self.resume_due()
                    except UNAVAILABLE_ERRORS as exc:
                        logger.warning("sms.sweep_failed", extra={"error": repr(exc)})
                        metrics.DATABASE_UNAVAILABLE.labels("sms_replies").inc()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), poll_seconds)
            finally:
                self.listening = False
                with contextlib.suppress(*UNAVAILABLE_ERRORS):
                    await listener.remove_listener(sms_outbox.NOTIFY_CHANNEL, self._notified)

    def request_stop(self) -> None:
        self._stopping = True
        self._wake.set()

    def _notified(self, *_: object) -> None:
        self._wake.set()

    # --- both modes ------------------------------------------------------------------------

    async def sweep_once(self) -> int:
        """Mark lost sends unknown, skip replies too old, and resume due pending replies."""
        await self._housekeeping()
        return await self.resume_due()

    async def _housekeeping(self) -> None:
        async with self.services.pool.acquire() as conn:
            for reply_id in await sms_outbox.expire_stale_sending(
                conn, older_than_seconds=self.stale_sending_seconds
            ):
                logger.error("sms.reply_outcome_unknown", extra={"reply_id": reply_id})
                _count("unknown", "process_lost")
            for reply_id in await sms_outbox.skip_expired(
                conn, older_than_seconds=self.max_reply_age_seconds
            ):
                logger.warning("sms.reply_too_old", extra={"reply_id": reply_id})
                _count("skipped", "too_old")

    async def resume_due(self) -> int:
        """Claim as many due pending replies as there are free slots, and start them."""
        free = self.max_concurrent_replies - self._in_flight
        if free <= 0:
            return 0  # a finishing reply wakes us up
        async with self.services.pool.acquire() as conn:
            claims = await sms_outbox.claim_due(conn, lease_seconds=self.lease_seconds, limit=free)
        for claim in claims:
            logger.info("sms.reply_claimed", extra={"reply_id": claim.reply_id})
            self.schedule(claim)
        return len(claims)

    def schedule(self, claim: Claim) -> asyncio.Task[Any]:
        self._in_flight += 1
        self._held.add(claim)
        self._none_held.clear()
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = self.services.spawn(self._renew_leases(), name="sms-lease-heartbeat")
        return self.services.spawn(self.process(claim), name=f"sms-reply-{claim.reply_id}")

    async def _renew_leases(self) -> None:
        """While this process holds claims: renew all their leases every lease / 3, in one
        statement. Ends when it holds none (the next `schedule` starts it again)."""
        while self._held:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._none_held.wait(), self.lease_seconds / 3)
            if not self._held:
                return
            try:
                async with self.services.pool.acquire() as conn:
                    await sms_outbox.renew(conn, list(self._held), lease_seconds=self.lease_seconds)
            except UNAVAILABLE_ERRORS as exc:
                logger.warning("sms.lease_renewal_failed", extra={"error": repr(exc)})
                metrics.DATABASE_UNAVAILABLE.labels("sms_replies").inc()
            except Exception:
                logger.exception("sms.lease_renewal_failed")

    # --- one reply -------------------------------------------------------------------------

    async def process(self, claim: Claim) -> None:
        """Generate (unless resumed with a text) and send one reply, at most once."""
        try:
            async with self._slots:
                await self._process(claim)
        except asyncio.CancelledError:
            # Stopping: hand a not-yet-sending row straight to the next process.
            with contextlib.suppress(Exception):
                async with self.services.pool.acquire(timeout=2) as conn:
                    await sms_outbox.release(conn, claim)
            raise
        finally:
            self._in_flight -= 1
            self._held.discard(claim)
            if not self._held:
                self._none_held.set()  # the heartbeat ends now, not a beat later
            self._wake.set()  # a slot is free: a worker claims the next reply

    async def _process(self, claim: Claim) -> None:
        async with self.services.pool.acquire() as conn:
            reply = await sms_outbox.get(conn, claim.reply_id)
            if reply is None or reply.claim != claim.claim or reply.status != "pending":
                return
            prompt = None if reply.body is not None else await self._prompt(conn, reply)
            if reply.body is None and prompt is None:
                await sms_outbox.finish(conn, claim, status="failed", error="no active agent")
                logger.warning("sms.reply_no_agent", extra=_log(reply))
                _count("failed", "no_agent")
                return
        body = reply.body
        if prompt is not None:
            try:
                text = await self.services.chat.reply(
                    prompt.agent, prompt.history, prompt.user_text, medium="sms"
                )
            except ChatFailed as exc:
                # No reply, no charge: the customer's message stays in the inbox for a human.
                async with self.services.pool.acquire() as conn:
                    await sms_outbox.finish(conn, claim, status="failed", error=str(exc))
                logger.warning("sms.reply_model_failed", extra={**_log(reply), "error": str(exc)})
                _count("failed", "model")
                return
            body = fit_body(text)
        assert body is not None
        await self._send(reply, claim, body)

    async def _prompt(self, conn: Connection, reply: OutboxReply) -> Prompt | None:
        """The prompt for the inbound message the reply answers; None without an active agent."""
        if reply.agent_id is None:
            return None
        try:
            agent = await agents.get_agent(conn, reply.agent_id)
        except NotFound:
            return None
        inbound = await conversations.get_message(conn, reply.inbound_message_id)
        if not agent.active or inbound is None:
            return None
        window = self.services.settings.chat_history_messages
        return await text_chat.prompt_for(conn, agent, inbound, window=window)

    async def _send(self, reply: OutboxReply, claim: Claim, body: str) -> None:
        body = xml_safe(body)  # control characters are noise on a phone, NUL breaks the row
        twilio = self.services.twilio
        if twilio is None:
            async with self.services.pool.acquire() as conn:
                await sms_outbox.finish(conn, claim, status="failed", error="Twilio not set up")
            _count("failed", "twilio_not_set_up")
            return
        settings = self.services.settings
        callback = status_callback_url(
            settings.public_base_url, reply.id, settings.twilio.auth_token or ""
        )

        async def send_once() -> SentMessage | None:
            """One attempt, unless the reply may no longer go (None)."""
            async with self.services.pool.acquire() as conn:
                blocked = await admission.reply_refusal(conn, reply)
                if blocked is not None:
                    await sms_outbox.finish(conn, claim, status="skipped", error=blocked.value)
                    logger.info("sms.reply_skipped", extra={**_log(reply), "reason": blocked})
                    _count("skipped", blocked.value)
                    return None
                if not await sms_outbox.begin_send(conn, claim, body):
                    return None  # another process took the row over: it sends, not us
            return await twilio.send_message(
                to=reply.to_number, from_=reply.from_number, body=body, status_callback=callback
            )

        async def before_retry(exc: Exception, _attempt: int, delay: float) -> None:
            async with self.services.pool.acquire() as conn:
                await sms_outbox.retry_later(
                    conn, claim, delay_seconds=delay, lease_seconds=self.lease_seconds,
                    error=str(exc),
                )  # fmt: skip
            logger.warning("sms.reply_send_retry", extra={**_log(reply), "error": str(exc)})

        try:
            sent = await call_with_retries(
                send_once,
                delays=self.retry_delays,
                retry_if=_may_send_again,
                before_retry=before_retry,
            )
        except ProviderError as exc:
            await self._send_failed(reply, claim, exc)
            return
        if sent is None:
            return
        async with self.services.pool.acquire() as conn:
            await sms_outbox.record_sent(
                conn, reply.id, sent.sid, status=sent.status, num_segments=sent.num_segments
            )
        logger.info("sms.reply_sent", extra={**_log(reply), "message_sid": sent.sid})
        _count("sent")

    async def _send_failed(self, reply: OutboxReply, claim: Claim, exc: ProviderError) -> None:
        """Record a send that failed for good, or whose outcome nobody knows."""
        extra = {**_log(reply), "error": str(exc)}
        async with self.services.pool.acquire() as conn:
            if not _never_reached(exc):
                # The request may have reached Twilio: sending again could text twice.
                await sms_outbox.mark_unknown(conn, reply.id, error=str(exc))
                logger.error("sms.reply_outcome_unknown", extra=extra)
                _count("unknown", "send_interrupted")
                return
            await sms_outbox.finish(conn, claim, status="failed", error=str(exc))
            logger.error("sms.reply_send_failed", extra=extra)
            unsubscribed = (
                isinstance(exc, ProviderStatusError) and exc.code == opt_outs.UNSUBSCRIBED_ERROR
            )
            _count("failed", "unsubscribed" if unsubscribed else "twilio_refused")
            if isinstance(exc, ProviderStatusError) and exc.code == opt_outs.UNSUBSCRIBED_ERROR:
                # Twilio holds an opt-out we never saw (a STOP before the number was ours, or
                # the carrier's): mirror it, so the contact's next texts cost no model call.
                await opt_outs.set_opted_out(
                    conn, reply.from_number, reply.to_number, opted_out=True,
                    keyword=opt_outs.UNSUBSCRIBED_KEYWORD,
                )  # fmt: skip
                logger.warning("sms.contact_unsubscribed_at_twilio", extra=_log(reply))


def _count(outcome: str, reason: str = "") -> None:
    metrics.SMS_REPLIES.labels(outcome, reason).inc()


def _never_reached(exc: ProviderError) -> bool:
    """An HTTP answer from Twilio, or no connection at all: nothing was created."""
    return isinstance(exc, ProviderStatusError | ProviderConnectionError)


def _may_send_again(exc: Exception) -> bool:
    return isinstance(exc, ProviderError) and exc.retryable and _never_reached(exc)


def _log(reply: OutboxReply) -> dict[str, object]:
    return {
        "workspace_id": str(reply.workspace_id),
        "conversation_id": str(reply.conversation_id),
        "reply_id": reply.id,
    }
