"""The agent a caller talks to: the workspace agent's instructions plus two phone tools."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from livekit import api
from livekit.agents import Agent, RunContext, function_tool, get_job_context
from livekit.agents.voice import SpeechHandle

from shared import phrases
from shared.models import Agent as AgentConfig
from worker.call_session import CallSession

logger = logging.getLogger("worker.agent")

_PHONE_RULES = (
    "You are speaking on a phone call: answer in short spoken sentences, no lists or markup."
    " Reply in the caller's language. If the caller asks for a human, call"
    " transfer_to_human. When the caller says goodbye or wants to hang up, call end_call."
)


# livekit-sip v1.8.0 (the newest the module proxy here serves) waits for a REFER's answer in a
# select that also watches the transaction ending, and Go picks either when both are ready:
# an answered REFER is then reported, at once, as a transaction that never completed. A REFER
# nobody answered ends the same way only after SIP's 32 s timer.
_LOST_ANSWER = "transaction failed to complete"
_LOST_ANSWER_WITHIN_SECONDS = 5.0


def refer_answered_but_reported_lost(exc: BaseException, elapsed_seconds: float) -> bool:
    """A transfer error that means the REFER was answered but livekit-sip lost the answer."""
    return (
        isinstance(exc, api.TwirpError)
        and _LOST_ANSWER in exc.message
        and elapsed_seconds < _LOST_ANSWER_WITHIN_SECONDS
    )


class VoiceAgent(Agent):
    def __init__(self, config: AgentConfig, call: CallSession) -> None:
        instructions = f"{config.instructions}\n\n{_PHONE_RULES}".strip()
        super().__init__(instructions=instructions)
        self.config = config
        self.call = call

    async def on_enter(self) -> None:
        greeting = self.config.greeting.strip() or phrases.line(
            "default_greeting", self.config.language
        )
        # The greeting is not interruptible: callers often say "hello?" over it.
        self.session.say(greeting, allow_interruptions=False)

    @function_tool
    async def transfer_to_human(self, context: RunContext[None]) -> str | None:
        """Hand the caller over to a human colleague. Use when the caller asks for a person."""
        number = self.config.handoff_number
        if not self.call.is_phone_call:
            return (
                "This is a test session, not a phone call: no human can take over here."
                " Tell the caller that a hand-off is unavailable in this test."
            )
        if not number:
            return "No human colleague is available. Tell the caller and offer to keep helping."
        # Speak after the current turn, then transfer; awaiting speech inside the tool that
        # owns the current turn would wait on itself.
        announcement = self.session.say(
            phrases.line("connecting", self.config.language), allow_interruptions=False
        )
        self.call.spawn(self._transfer_after(announcement, number), name="sip_transfer")
        return None

    async def _transfer_after(self, announcement: SpeechHandle, number: str) -> None:
        await announcement
        ctx = get_job_context()
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await ctx.api.sip.transfer_sip_participant(
                api.TransferSIPParticipantRequest(
                    room_name=ctx.room.name,
                    participant_identity=self.call.caller.identity,
                    transfer_to=f"tel:{number}",
                    play_dialtone=False,
                )
            )
        except Exception as exc:
            if not refer_answered_but_reported_lost(exc, loop.time() - started):
                logger.exception("call.transfer_failed", extra=self.call.log_extra)
                self.session.say(phrases.line("transfer_failed", self.config.language))
                return
            # The caller's side answered the REFER; livekit-sip only lost the answer.
            logger.warning(
                "call.transfer_answer_lost",
                extra={**self.call.log_extra, "error": str(exc)},
            )
        await self.call.mark_handed_off()
        logger.info("call.handed_off", extra=self.call.log_extra)
        # The caller's leg now belongs to the human; our part of the call is over.
        self.call.mark_ended()
        self.session.shutdown(drain=False)

    @function_tool
    async def end_call(self, context: RunContext[None]) -> None:
        """End the call. Use when the caller says goodbye or clearly wants to hang up."""
        goodbye = self.session.say(
            phrases.line("goodbye", self.config.language), allow_interruptions=False
        )
        self.call.spawn(self._close_after(goodbye), name="end_call")
        return None

    async def _close_after(self, speech: SpeechHandle) -> None:
        await speech
        self.call.mark_ended()
        self.session.shutdown(drain=False)


async def enforce_max_length(agent: VoiceAgent, *, warning_seconds: float) -> None:
    """Warn shortly before the agent's max call length, then say goodbye and end the call."""
    call = agent.call
    limit = agent.config.max_call_seconds
    warning = min(warning_seconds, limit / 2)
    started = call.caller.joined_at
    loop = asyncio.get_running_loop()
    elapsed = max(0.0, (datetime.now(UTC) - started).total_seconds())
    deadline = loop.time() + max(0.0, limit - elapsed)
    await asyncio.sleep(max(0.0, deadline - warning - loop.time()))
    session = agent.session
    session.say(phrases.line("max_call_warning", agent.config.language))
    await asyncio.sleep(max(0.0, deadline - loop.time()))
    logger.info("call.max_length_reached", extra=call.log_extra)
    session.interrupt(force=True)
    goodbye = session.say(phrases.line("goodbye", agent.config.language), allow_interruptions=False)
    await goodbye
    call.mark_ended()
    session.shutdown(drain=False)
