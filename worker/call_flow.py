"""What keeps a running call moving, wired to its session: the keypad, the late-reply
filler, the apology for a failed reply, and the idle caller's prompt and goodbye."""

from __future__ import annotations

import logging

from livekit import rtc
from livekit.agents import AgentSession, JobContext

from shared import phrases
from shared.call_flow import idle_seconds
from shared.settings import Settings
from worker.dead_air import LateReplyFiller, ReplyFailures
from worker.idle import IdleWatch
from worker.keypad import Keypad
from worker.voice_agent import VoiceAgent

logger = logging.getLogger("worker.call_flow")


def away_timeout(settings: Settings, agent: VoiceAgent) -> float:
    """The session's `user_away_timeout`: the caller's silence before "are you still there?"."""
    return idle_seconds(settings.calls, agent.config)[0]


def attach(
    ctx: JobContext, session: AgentSession[None], agent: VoiceAgent, settings: Settings
) -> None:
    """Wire the call flow to a started session; each piece is closed when the job ends."""
    call = agent.call
    language = agent.config.language
    flow = settings.calls

    keypad = Keypad(
        handoff_digit=agent.config.handoff_digit if agent.offers_handoff_digit else "",
        digit_timeout=flow.keypad_digit_timeout_seconds,
        max_digits=flow.keypad_max_digits,
        on_handoff=agent.keypad_handoff,
        on_entry=agent.keypad_entry,
    )

    def on_dtmf(event: rtc.SipDTMF) -> None:
        sender = event.participant.identity if event.participant is not None else None
        if sender != call.caller.identity:
            return  # only the caller's own keypad counts
        if not keypad.press(event.digit):
            logger.warning("call.keypad_ignored", extra={**call.log_extra, "code": event.code})

    ctx.room.on("sip_dtmf_received", on_dtmf)

    filler = LateReplyFiller(
        session, delay=flow.late_reply_filler_seconds, log_extra=call.log_extra
    )
    call.spawn(filler.start(ctx.room), name="late_reply_filler")

    failures = ReplyFailures(
        session,
        handoff_after=flow.failures_before_handoff,
        apology=lambda: phrases.line("apology", language),
        hand_off=lambda: agent.start_handoff(reason="reply_failures"),
        log_extra=call.log_extra,
    )

    idle = IdleWatch(
        session,
        goodbye_seconds=idle_seconds(flow, agent.config)[1],
        prompt=agent.ask_still_there,
        goodbye=lambda: agent.say_goodbye_and_end("idle_goodbye", reason="idle"),
        log_extra=call.log_extra,
    )

    async def close() -> None:
        ctx.room.off("sip_dtmf_received", on_dtmf)
        keypad.close()
        failures.close()
        await idle.aclose()
        await filler.aclose()

    ctx.add_shutdown_callback(close)
