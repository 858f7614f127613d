"""The agent a caller talks to: the workspace agent's instructions plus two phone tools.

Also the call's fixed moves that need no model: the keypad's hand-off digit and entries,
the idle caller's prompt and goodbye, and every ending (end_call, max call length, idle),
each heard in full before the room is deleted.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterable
from datetime import UTC, datetime

from livekit import api, rtc
from livekit.agents import (
    Agent,
    AgentSession,
    ModelSettings,
    RunContext,
    function_tool,
    get_job_context,
    stt,
)
from livekit.agents.voice import SpeechHandle

from shared import phrases
from shared.call_flow import entry_text
from shared.models import Agent as AgentConfig
from worker.call_session import CallSession
from worker.split_utterances import join_resumed_finals
from worker.warm_handoff import warm_handoff

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
# The last goodbye frames are still on their way (WebRTC, livekit-sip's mixer and jitter
# buffer, the carrier) when our audio source has played them out: the room is deleted this
# much later, so the caller hears the goodbye to its end.
PLAYOUT_TAIL_SECONDS = 0.5


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
        self._handing_off = False
        self._ending = False

    @property
    def offers_handoff_digit(self) -> bool:
        """Whether the keypad's hand-off digit is live (the agent has a number to hand to)."""
        return bool(self.config.handoff_number and self.config.handoff_digit)

    @property
    def ending(self) -> bool:
        """A goodbye is playing or played: the call is closing."""
        return self._ending

    def greeting_text(self) -> str:
        greeting = self.config.greeting.strip() or phrases.line(
            "default_greeting", self.config.language
        )
        if self.offers_handoff_digit:
            press = phrases.line("press_for_person", self.config.language)
            greeting = f"{greeting} {press.format(digit=self.config.handoff_digit)}"
        return greeting

    def stt_node(
        self, audio: AsyncIterable[rtc.AudioFrame], model_settings: ModelSettings
    ) -> AsyncIterable[stt.SpeechEvent]:
        # One reply started per utterance, not one per piece of it (worker/split_utterances.py).
        return join_resumed_finals(Agent.default.stt_node(self, audio, model_settings))

    async def on_enter(self) -> None:
        # The greeting is not interruptible: callers often say "hello?" over it.
        self.session.say(self.greeting_text(), allow_interruptions=False)

    @function_tool
    async def transfer_to_human(self, context: RunContext[None]) -> str | None:
        """Hand the caller over to a human colleague. Use when the caller asks for a person."""
        if not self.call.is_phone_call:
            return (
                "This is a test session, not a phone call: no human can take over here."
                " Tell the caller that a hand-off is unavailable in this test."
            )
        if not self.config.handoff_number:
            return "No human colleague is available. Tell the caller and offer to keep helping."
        self.start_handoff(reason="tool")
        return None

    def start_handoff(self, *, reason: str) -> bool:
        """Announce and transfer the caller to the agent's hand-off number, without the model.

        The one hand-off path: the model's tool, the keypad's hand-off digit and repeated
        reply failures all come here. False when no hand-off is possible on this call.
        """
        number = self.config.handoff_number
        if not number or not self.call.is_phone_call or self._ending:
            return False
        if self._handing_off:
            return True
        self._handing_off = True
        logger.info("call.handoff_started", extra={**self.call.log_extra, "reason": reason})
        if self.config.handoff_mode == "warm":
            self.call.spawn(self._warm_handoff(number), name="warm_handoff")
            return True
        # Speak after the current turn, then transfer; awaiting speech inside the tool that
        # owns the current turn would wait on itself.
        announcement = self.session.say(
            phrases.line("connecting", self.config.language), allow_interruptions=False
        )
        self.call.spawn(self._transfer_after(announcement, number), name="sip_transfer")
        return True

    async def _warm_handoff(self, number: str) -> None:
        if not await warm_handoff(self.session, self.call, self.config, number):
            self._handing_off = False  # nobody answered: the caller is back with the agent

    async def _transfer_after(self, announcement: SpeechHandle, number: str) -> None:
        await announcement
        await asyncio.sleep(PLAYOUT_TAIL_SECONDS)  # "connecting you" heard to its end
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
                self._handing_off = False
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

    # --- the keypad ----------------------------------------------------------------------

    def keypad_handoff(self) -> None:
        """The caller pressed the hand-off digit: a person at once, no model turn."""
        if self._ending or self._handing_off:
            return  # a goodbye or the hand-off's own lines are not to be cut by a second press
        logger.info("call.keypad_handoff", extra=self.call.log_extra)
        # No chat item carries the press (the model is not asked): store it as the caller's.
        self.call.queue_caller_line(
            f"keypad_{secrets.token_hex(6)}",
            entry_text(self.config.handoff_digit, self.config.language),
        )
        _interrupt(self.session)
        if not self.start_handoff(reason="keypad"):
            # A playground session: there is no phone line to hand over.
            self.session.say(phrases.line("transfer_failed", self.config.language))

    def keypad_entry(self, digits: str) -> None:
        """Keys the caller typed (an order number): the model's input for the next turn."""
        if self._ending or self._handing_off:
            return
        logger.info("call.keypad_entry", extra={**self.call.log_extra, "keys": len(digits)})
        _interrupt(self.session)
        self.session.generate_reply(user_input=entry_text(digits, self.config.language))

    # --- idle callers and endings --------------------------------------------------------

    def ask_still_there(self) -> SpeechHandle | None:
        """The caller has been silent: ask whether they are still there (None: ending)."""
        if self._ending or self._handing_off:
            return None
        return self.session.say(phrases.line("still_there", self.config.language))

    @function_tool
    async def end_call(self, context: RunContext[None]) -> None:
        """End the call. Use when the caller says goodbye or clearly wants to hang up."""
        self.call.spawn(self.say_goodbye_and_end("goodbye", reason="end_call"), name="end_call")
        return None

    async def say_goodbye_and_end(self, line: phrases.Line, *, reason: str) -> None:
        """Say `line`, let it reach the caller in full, then end the call (room deleted)."""
        if self._ending:
            return
        self._ending = True
        logger.info("call.ending", extra={**self.call.log_extra, "reason": reason})
        goodbye = self.session.say(
            phrases.line(line, self.config.language), allow_interruptions=False
        )
        await goodbye
        # Our audio source has played the goodbye out; let its last frames reach the phone.
        await asyncio.sleep(PLAYOUT_TAIL_SECONDS)
        self.call.mark_ended()
        self.session.shutdown(drain=False)


def _interrupt(session: AgentSession[None]) -> None:
    """Stop what the agent is saying (the caller acted on the keypad), greeting included."""
    try:
        session.interrupt(force=True)
    except RuntimeError:
        pass  # the session is closing


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
    if agent.ending:
        return  # another goodbye is already playing: let it finish
    _interrupt(session)
    await agent.say_goodbye_and_end("goodbye", reason="max_call_length")
