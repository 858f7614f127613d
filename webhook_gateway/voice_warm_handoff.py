"""The TwiML loop's warm hand-off: the person is briefed on their own leg before the bridge.

The caller hears the hold line and ringing; the briefing (a one-paragraph summary from
shared/handoff_summary, written while the person's phone rings) is stored once as a system
line of the transcript, so any gateway instance that gets the person's leg (`/whisper`) says
the same one. The person accepts with 1; anything else, or nothing, hangs up their leg, and
the loop takes the caller back (VoiceLoop.handoff_ended).
"""

from __future__ import annotations

import asyncio
import logging

from twilio.twiml.voice_response import VoiceResponse

from shared import calls, conversations, handoff_summary
from shared.models import Agent
from shared.phrases import line
from shared.provider_ids import handoff_summary_id
from shared.providers.chat import ChatFailed
from shared.services import Services
from webhook_gateway import voice_twiml as tw
from webhook_gateway.voice_languages import VoiceLocale
from webhook_gateway.voice_tasks import ReplyTasks

logger = logging.getLogger("webhook_gateway.voice")

# The person answering a warm hand-off hears nothing while their briefing is written, and
# Twilio gives the whisper webhook 15 s: the summary gets this long, then the plain fallback.
SUMMARY_DEADLINE_SECONDS = 6.0
_WHISPER_WAIT_SECONDS = SUMMARY_DEADLINE_SECONDS + 2.0
_SUMMARY_MAX_TOKENS = 200


class WarmHandOff:
    def __init__(self, services: Services, links: tw.VoiceLinks) -> None:
        self.services = services
        self.links = links
        self.summaries = ReplyTasks(services)  # briefings being written, per (CallSid, turn)

    def ring(
        self,
        call: calls.Call,
        agent: Agent,
        locale: VoiceLocale,
        text: str,
        turn: int,
        *,
        action: str,
    ) -> VoiceResponse:
        """Start the briefing and ring the person, whose leg runs `/whisper` first."""
        assert agent.handoff_number
        self.summaries.get_or_start((call.call_sid, turn), self._summarise(call, agent, turn))
        return tw.dial_person_warm(
            locale,
            text,
            agent.handoff_number,
            action=action,
            whisper_url=self.links.whisper(call.call_sid, turn),
            ring_seconds=self.services.settings.calls.warm_ring_seconds,
        )

    async def brief(
        self, call: calls.Call, agent: Agent, locale: VoiceLocale, turn: int
    ) -> VoiceResponse:
        """The person's leg: who is calling, the summary, and how to accept."""
        key = (call.call_sid, turn)
        task = self.summaries.get_or_start(key, self._summarise(call, agent, turn))
        summary: str | None = None
        try:
            summary = await asyncio.wait_for(asyncio.shield(task), timeout=_WHISPER_WAIT_SECONDS)
        except TimeoutError:
            logger.warning("voice.handoff_summary_late", extra={"call_sid": call.call_sid})
        if not summary:
            async with self.services.pool.acquire() as conn:
                messages = await conversations.history(conn, call.conversation_id)
            summary = handoff_summary.fallback_summary(
                [(m.role, m.body) for m in messages], agent.language
            )
        words = locale.phrase_language
        logger.info("voice.warm_whisper", extra={"call_sid": call.call_sid, "turn": turn})
        return tw.whisper(
            locale,
            [line("handoff_whisper", words), summary, line("handoff_accept", words)],
            action=self.links.whisper_answer(call.call_sid, turn),
        )

    def forget_call(self, call_sid: str) -> None:
        self.summaries.forget_call(call_sid)

    async def _summarise(self, call: calls.Call, agent: Agent, turn: int) -> str:
        """The one-paragraph briefing for the person (shared/handoff_summary), stored once
        under the hand-off's id as a system line of the transcript; the plain fallback when
        the model fails."""
        summary_id = handoff_summary_id(call.call_sid, turn)
        async with self.services.pool.acquire() as conn:
            stored = await conversations.get_message_by_provider_id(conn, summary_id)
            if stored is not None:
                return stored.body
            messages = await conversations.history(
                conn, call.conversation_id, limit=handoff_summary.MAX_TURNS
            )
        turns = [(m.role, m.body) for m in messages]
        summary = ""
        try:
            answer = await self.services.chat.complete(
                handoff_summary.summary_messages(turns, agent.language),
                model=agent.chat_model,
                max_tokens=_SUMMARY_MAX_TOKENS,
                deadline_seconds=SUMMARY_DEADLINE_SECONDS,
            )
            summary = handoff_summary.spoken_summary(answer)
        except ChatFailed as exc:
            logger.warning(
                "voice.handoff_summary_failed",
                extra={"call_sid": call.call_sid, "turn": turn, "error": str(exc)},
            )
        summary = summary or handoff_summary.fallback_summary(turns, agent.language)
        async with self.services.pool.acquire() as conn:
            stored = await conversations.add_message(
                conn, call.conversation_id, direction="outbound", role="system", body=summary,
                provider_id=summary_id,
            )  # fmt: skip
        return stored.body
