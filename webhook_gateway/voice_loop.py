"""The voice call state machine: answer (refuse, hand to LiveKit, or greet), then turns.

The HTTP edge (routes/voice.py) parses Twilio's form fields into the arguments here; this
module decides and returns the TwiML document. Each turn stores the caller's words at once
under `<CallSid>:turn:<n>:user`, and the reply under `...:assistant`, so a Twilio retry of the
same request never stores or generates twice. A slow model never holds a request past the
turn deadline: the caller hears a filler and Twilio comes back on a `<Redirect>` to collect.

A caller may speak or type on the keypad (`Digits`): the agent's hand-off key transfers at
once, other entries reach the model as the caller's words. Silence is counted in the
`<Gather>`'s empty waits against the idle timers; model failures in a row are counted in the
turn URLs and hand the caller to a person when the agent has one. Every ending says its line
before `<Hangup/>` in the same document. A warm hand-off rings the person with a briefing on
their leg first (`/whisper`), and bridges only when they press 1.

Reply tasks live in this process (kept by Services.spawn). Another instance that gets
the collect request finds the reply in Postgres once stored; if the task is not there (other
instance still generating, or a restart), it generates from the stored words itself and the
first stored reply wins: correct, at worst one extra model call.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime

from twilio.twiml.voice_response import VoiceResponse

from shared import admission, agents, calls, conversations, text_chat
from shared.admission import Refusal
from shared.call_flow import end_of_entry_key, entry_text, idle_seconds
from shared.conversations import StoredMessage
from shared.errors import NotFound
from shared.models import Agent
from shared.pg import Connection
from shared.phrases import asks_for_human, line
from shared.provider_ids import greeting_id, reply_turn_id, user_turn_id
from shared.providers.chat import ChatFailed
from shared.routing import InboundTarget
from shared.services import Services
from shared.settings import Settings
from webhook_gateway import voice_twiml as tw
from webhook_gateway.voice_languages import DEFAULT_TAG, VoiceLocale, voice_locale
from webhook_gateway.voice_tasks import ReplyTasks
from webhook_gateway.voice_warm_handoff import WarmHandOff

logger = logging.getLogger("webhook_gateway.voice")


@dataclass(frozen=True)
class IncomingCall:
    """A call Twilio asks us to answer."""

    call_sid: str
    from_number: str
    to_number: str


@dataclass(frozen=True)
class IdleRule:
    """Caller silence, in empty `<Gather>` waits of `wait_seconds` each: "are you still
    there?" after `prompt_after` of them, goodbye and hang-up after `goodbye_after`."""

    prompt_after: int
    goodbye_after: int

    @classmethod
    def for_agent(cls, agent: Agent, settings: Settings, wait_seconds: int) -> IdleRule:
        prompt, goodbye = idle_seconds(settings.calls, agent)
        first = max(1, math.ceil(prompt / wait_seconds))
        return cls(first, first + max(1, math.ceil(goodbye / wait_seconds)))


class VoiceLoop:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.settings = services.settings
        self.links = tw.VoiceLinks(services.settings.public_base_url)
        self.tuning = tw.GatherTuning.from_settings(services.settings)
        self.replies = ReplyTasks(services)
        self.warm = WarmHandOff(services, self.links)

    # --- answering -------------------------------------------------------------------------

    async def answer(self, incoming: IncomingCall) -> VoiceResponse:
        """The first TwiML of a call: refuse, bridge into LiveKit, or greet and listen."""
        log = {"call_sid": incoming.call_sid}
        async with self.services.pool.acquire() as conn:
            decision = await admission.decide_call(conn, incoming.to_number)
            target, agent, refused = decision.target, decision.agent, decision.refusal
            if target is not None:
                log["workspace"] = str(target.workspace.id)
            if refused is not None:
                return self._refuse(refused, self._locale(agent), log)
            assert target is not None and agent is not None
            # One transaction for the writes of the answer: one commit (and WAL flush), not four.
            async with conn.transaction():
                return await self._open_and_answer(
                    conn, incoming, target, agent, self._locale(agent), log
                )

    def _refuse(self, refused: Refusal, locale: VoiceLocale, log: dict[str, str]) -> VoiceResponse:
        """A refused call costs nothing and is not opened as a call: no conversation, no
        minutes; the caller hears why, except at a number we do not know."""
        if refused is Refusal.UNKNOWN_NUMBER:
            logger.info("voice.unknown_number", extra=log)
            return VoiceResponse()
        if refused is Refusal.NUMBER_REGION_NOT_ENABLED:
            logger.info("voice.region_rejected", extra=log)
            return tw.reject()
        if refused is Refusal.NO_AGENT:
            logger.warning("voice.no_voice_agent", extra=log)
            return tw.say_and_hang_up(locale, line("no_agent", locale.phrase_language))
        logger.info("voice.spend_refused", extra={**log, "reason": str(refused)})
        return tw.say_and_hang_up(locale, line("unavailable", locale.phrase_language))

    async def _open_and_answer(
        self,
        conn: Connection,
        incoming: IncomingCall,
        target: InboundTarget,
        agent: Agent,
        locale: VoiceLocale,
        log: dict[str, str],
    ) -> VoiceResponse:
        call = await calls.open_call(
            conn,
            call_sid=incoming.call_sid,
            workspace_id=target.workspace.id,
            channel_id=target.channel.id,
            agent_id=agent.id,
            source="twilio",
            from_number=incoming.from_number or None,
            to_number=target.channel.phone_number,
            connected=True,  # we answer it now
        )
        log["conversation"] = str(call.conversation_id)
        if call.ended_at is not None:
            return tw.hang_up()
        if not call.created:  # a Twilio retry: keep the first answer time
            await calls.mark_connected(conn, incoming.call_sid)
        sip_uri = self.settings.livekit.sip_uri
        if sip_uri:
            logger.info("voice.dial_livekit", extra=log)
            uri = tw.livekit_sip_uri(sip_uri, target.channel.phone_number, incoming.call_sid)
            return tw.dial_livekit(
                uri,
                action=self.links.dial_status,
                username=self.settings.livekit.sip_auth_username,
                password=self.settings.livekit.sip_auth_password,
            )
        logger.info("voice.answered", extra=log)
        return await self._greet(conn, call, agent, locale)

    async def dial_ended(self, call_sid: str, dial_status: str, sip_code: str) -> VoiceResponse:
        """The `<Dial><Sip>` leg ended: done when LiveKit carried the call, else the loop."""
        if dial_status in tw.SIP_LEG_ANSWERED:
            return tw.hang_up()
        async with self.services.pool.acquire() as conn:
            loaded = await self._load(conn, call_sid)
            if loaded is None:
                return tw.hang_up()
            call, agent = loaded
            logger.warning(
                "voice.sip_leg_failed_fallback",
                extra={"call_sid": call_sid, "dial_status": dial_status, "sip_code": sip_code,
                       "conversation": str(call.conversation_id)},
            )  # fmt: skip
            return await self._greet(conn, call, agent, self._locale(agent))

    async def _greet(
        self, conn: Connection, call: calls.Call, agent: Agent, locale: VoiceLocale
    ) -> VoiceResponse:
        words = locale.phrase_language
        text = agent.greeting.strip() or line("default_greeting", words)
        if agent.handoff_number and agent.handoff_digit:
            text += " " + line("press_for_person", words).format(digit=agent.handoff_digit)
        if locale.voice_fallback:  # once a call, not on every turn
            logger.info(
                "voice_loop.voice_fallback",
                extra={"call_sid": call.call_sid, "voice": (agent.voice or "")[:60],
                       "language": agent.language, "fallback": locale.say_voice},
            )  # fmt: skip
        await conversations.add_message(
            conn, call.conversation_id, direction="outbound", role="assistant", body=text,
            provider_id=greeting_id(call.call_sid),
        )  # fmt: skip
        return tw.greeting(
            locale,
            text,
            links=self.links,
            tuning=self.tuning,
            record=self.settings.voice.record_calls,
            finish_on_key=end_of_entry_key(agent.handoff_digit),
        )

    # --- turns -----------------------------------------------------------------------------

    async def turn(
        self,
        call_sid: str,
        turn: int,
        silent: int,
        speech: str,
        *,
        digits: str = "",
        failed: int = 0,
    ) -> VoiceResponse:
        """A `<Gather>` result (words or a keypad entry): store it, answer within the
        deadline, listen again."""
        speech = speech.strip()
        async with self.services.pool.acquire() as conn:
            loaded = await self._load(conn, call_sid)
            if loaded is None:
                return tw.hang_up()
            call, agent = loaded
            locale = self._locale(agent)
            words = locale.phrase_language
            # Keypad entries are stored as what was pressed, and so reach the model too.
            text = entry_text(digits, words) if digits else speech
            said = None
            if text:
                said = await conversations.add_message(
                    conn, call.conversation_id, direction="inbound", role="user", body=text,
                    provider_id=user_turn_id(call_sid, turn),
                )  # fmt: skip
            if self._time_up(call, agent):
                logger.info("voice.max_call_length", extra={"call_sid": call_sid})
                return tw.say_and_hang_up(locale, line("time_up", words))
            if said is None:
                return self._silence(call_sid, agent, locale, turn, silent + 1, failed)
            if digits:
                logger.info(
                    "voice.keypad_entry",  # the length only: an entry may be an account number
                    extra={"call_sid": call_sid, "turn": turn, "digits": len(digits)},
                )
            if self._wants_person(agent, speech, digits, words):
                return await self._hand_off(conn, call, agent, locale, turn)
            stored = await conversations.get_message_by_provider_id(
                conn, reply_turn_id(call_sid, turn)
            )
        if stored is not None:  # Twilio retried a turn we already answered
            return self._listen(agent, locale, stored.body, self.links.turn(turn + 1))
        task = self.replies.get_or_start((call_sid, turn), self._generate(call, agent, turn, said))
        return await self._say_reply(task, call, agent, turn, 0, failed, locale)

    def _silence(
        self, call_sid: str, agent: Agent, locale: VoiceLocale, turn: int, silent: int, failed: int
    ) -> VoiceResponse:
        """One more empty wait: listen on quietly, ask whether the caller is still there, or
        say goodbye and hang up (settings.calls idle timers, the agent's own if it has them)."""
        rule = IdleRule.for_agent(agent, self.settings, self.tuning.timeout)
        words = locale.phrase_language
        if silent >= rule.goodbye_after:
            logger.info("voice.idle_goodbye", extra={"call_sid": call_sid, "silent": silent})
            return tw.say_and_hang_up(locale, line("idle_goodbye", words))
        text = None
        if silent == rule.prompt_after:
            logger.info("voice.idle_prompt", extra={"call_sid": call_sid, "silent": silent})
            text = line("still_there", words)
        return self._listen(agent, locale, text, self.links.turn(turn, silent, failed))

    @staticmethod
    def _wants_person(agent: Agent, speech: str, digits: str, words: str) -> bool:
        """The hand-off key pressed alone, or a spoken request for a person."""
        if not agent.handoff_number:
            return False
        if digits:
            return bool(agent.handoff_digit) and digits == agent.handoff_digit
        return asks_for_human(speech, words)

    async def collect(
        self, call_sid: str, turn: int, wait: int, *, failed: int = 0
    ) -> VoiceResponse:
        """The `<Redirect>` after a filler: say the reply once it is ready."""
        async with self.services.pool.acquire() as conn:
            loaded = await self._load(conn, call_sid)
            if loaded is None:
                return tw.hang_up()
            call, agent = loaded
            locale = self._locale(agent)
            stored = await conversations.get_message_by_provider_id(
                conn, reply_turn_id(call_sid, turn)
            )
            if stored is not None:
                return self._listen(agent, locale, stored.body, self.links.turn(turn + 1))
            task = self.replies.get((call_sid, turn))
            if task is None:
                said = await conversations.get_message_by_provider_id(
                    conn, user_turn_id(call_sid, turn)
                )
                if said is None:  # nothing to answer: ask again
                    reprompt = line("reprompt", locale.phrase_language)
                    return self._listen(agent, locale, reprompt, self.links.turn(turn))
                logger.info("voice.reply_resumed", extra={"call_sid": call_sid, "turn": turn})
                task = self.replies.get_or_start(
                    (call_sid, turn), self._generate(call, agent, turn, said)
                )
        return await self._say_reply(task, call, agent, turn, wait, failed, locale)

    async def _say_reply(
        self,
        task: asyncio.Task[str | None],
        call: calls.Call,
        agent: Agent,
        turn: int,
        wait: int,
        failed: int,
        locale: VoiceLocale,
    ) -> VoiceResponse:
        words = locale.phrase_language
        deadline = (
            self.settings.voice.turn_deadline_seconds
            if wait == 0
            else self.settings.voice.collect_wait_seconds
        )
        log = {"call_sid": call.call_sid, "turn": turn}
        try:
            reply = await asyncio.wait_for(asyncio.shield(task), timeout=deadline)
        except TimeoutError:
            if wait >= self.settings.voice.max_collect_waits:
                logger.warning("voice.reply_gave_up", extra=log)
                return await self._failed_turn(call, agent, locale, turn, failed)
            logger.info("voice.reply_slow", extra=log)
            filler = line("filler" if wait == 0 else "still_waiting", words)
            return tw.say_then_redirect(locale, filler, self.links.collect(turn, wait + 1, failed))
        if reply is None:
            return await self._failed_turn(call, agent, locale, turn, failed)
        return self._listen(agent, locale, reply, self.links.turn(turn + 1))

    async def _failed_turn(
        self, call: calls.Call, agent: Agent, locale: VoiceLocale, turn: int, failed: int
    ) -> VoiceResponse:
        """No reply: apologise and go on, or, after failures_before_handoff in a row, hand
        the caller to a person when the agent has one (never silence)."""
        failed += 1
        if agent.handoff_number and failed >= self.settings.calls.failures_before_handoff:
            logger.warning(
                "voice.failures_hand_off",
                extra={"call_sid": call.call_sid, "turn": turn, "failed": failed},
            )
            async with self.services.pool.acquire() as conn:
                return await self._hand_off(conn, call, agent, locale, turn)
        apology = line("apology", locale.phrase_language)
        return self._listen(agent, locale, apology, self.links.turn(turn + 1, failed=failed))

    async def _generate(
        self, call: calls.Call, agent: Agent, turn: int, said: StoredMessage
    ) -> str | None:
        """One reply from the text-chat pipeline, stored under the turn's id; None on failure."""
        async with self.services.pool.acquire() as conn:
            window = self.settings.chat_history_messages
            prompt = await text_chat.prompt_for(conn, agent, said, window=window)
        try:
            text = await self.services.chat.reply(
                prompt.agent, prompt.history, prompt.user_text, medium="voice"
            )
        except ChatFailed as exc:
            logger.warning(
                "voice.reply_failed",
                extra={"call_sid": call.call_sid, "turn": turn, "error": str(exc)},
            )
            return None
        async with self.services.pool.acquire() as conn:
            stored = await conversations.add_message(
                conn, call.conversation_id, direction="outbound", role="assistant", body=text,
                provider_id=reply_turn_id(call.call_sid, turn),
            )  # fmt: skip
        return stored.body  # another instance's reply wins if it was stored first

    # --- hand-off --------------------------------------------------------------------------

    async def _hand_off(
        self,
        conn: Connection,
        call: calls.Call,
        agent: Agent,
        locale: VoiceLocale,
        turn: int,
    ) -> VoiceResponse:
        assert agent.handoff_number
        warm = agent.handoff_mode == "warm"
        text = line("hold" if warm else "connecting", locale.phrase_language)
        await conversations.add_message(
            conn, call.conversation_id, direction="outbound", role="assistant", body=text,
            provider_id=reply_turn_id(call.call_sid, turn),
        )  # fmt: skip
        log = {"call_sid": call.call_sid, "conversation": str(call.conversation_id)}
        action = self.links.handoff_status(turn + 1, warm=warm)
        if not warm:
            await conversations.mark_handed_off(conn, call.conversation_id)
            logger.info("voice.handed_off", extra=log)
            return tw.dial_person(locale, text, agent.handoff_number, action=action)
        # Warm: the conversation is handed off only once the person accepts.
        logger.info("voice.warm_handoff_ringing", extra=log)
        return self.warm.ring(call, agent, locale, text, turn, action=action)

    async def whisper(self, call_sid: str, turn: int) -> VoiceResponse:
        """The person answered a warm hand-off of `call_sid`: brief them, ask them to accept."""
        async with self.services.pool.acquire() as conn:
            loaded = await self._load(conn, call_sid)
        if loaded is None:  # the caller is gone: nothing to bridge
            logger.info("voice.warm_caller_gone", extra={"call_sid": call_sid, "turn": turn})
            return tw.hang_up()
        call, agent = loaded
        return await self.warm.brief(call, agent, self._locale(agent), turn)

    async def whisper_answered(self, call_sid: str, turn: int, digits: str) -> VoiceResponse:
        """1 accepts: an empty document ends the person's TwiML and Twilio bridges them to
        the caller. Anything else, or nothing, hangs up their leg: declined."""
        log = {"call_sid": call_sid, "turn": turn}
        if digits != "1":
            logger.info("voice.warm_declined", extra=log)
            return tw.hang_up()
        async with self.services.pool.acquire() as conn:
            loaded = await self._load(conn, call_sid)
            if loaded is None:
                return tw.hang_up()
            await conversations.mark_handed_off(conn, loaded[0].conversation_id)
        logger.info("voice.warm_accepted", extra=log)
        return VoiceResponse()

    async def handoff_ended(
        self, call_sid: str, dial_status: str, turn: int, *, warm: bool = False
    ) -> VoiceResponse:
        """The person's leg ended: the call is over, or nobody took it and the agent resumes."""
        if dial_status in tw.SIP_LEG_ANSWERED and not warm:
            return tw.hang_up()
        async with self.services.pool.acquire() as conn:
            loaded = await self._load(conn, call_sid)
            if loaded is None:
                return tw.hang_up()
            call, agent = loaded
            if dial_status in tw.SIP_LEG_ANSWERED:
                # A declined briefing ends an answered leg too: taken only if 1 was pressed.
                conversation = await conversations.get_conversation(conn, call.conversation_id)
                if conversation["handed_off"]:
                    return tw.hang_up()
        logger.info(
            "voice.handoff_unanswered",
            extra={"call_sid": call_sid, "dial_status": dial_status, "warm": warm},
        )
        locale = self._locale(agent)
        text = line("nobody_answered" if warm else "transfer_failed", locale.phrase_language)
        return self._listen(agent, locale, text, self.links.turn(turn))

    # --- callbacks -------------------------------------------------------------------------

    async def call_status(self, call_sid: str, status: str, duration_seconds: int | None) -> None:
        """Call progress: a terminal status closes the call and charges its minutes once."""
        async with self.services.pool.acquire() as conn:
            if status in calls.TERMINAL_STATUSES:
                charge = await calls.finish_call(
                    conn, call_sid, status=status, duration_seconds=duration_seconds
                )
                self.replies.forget_call(call_sid)
                self.warm.forget_call(call_sid)
                logger.info(
                    "voice.call_finished",
                    extra={"call_sid": call_sid, "status": status,
                           "minutes": charge.quantity if charge else 0,
                           "charged_now": bool(charge and charge.created)},
                )  # fmt: skip
            elif status in ("in-progress", "answered"):
                await calls.mark_connected(conn, call_sid)

    # --- helpers ---------------------------------------------------------------------------

    async def _load(self, conn: Connection, call_sid: str) -> tuple[calls.Call, Agent] | None:
        """The live call and its agent; None when unknown, ended, or the agent is gone."""
        call = await calls.get_call(conn, call_sid)
        if call is None or call.ended_at is not None or call.agent_id is None:
            return None
        try:
            agent = await agents.get_agent(conn, call.agent_id)
        except NotFound:
            return None
        return call, agent

    def _locale(self, agent: Agent | None) -> VoiceLocale:
        if agent is None:
            return voice_locale(DEFAULT_TAG)
        return voice_locale(agent.language, agent.voice)

    def _listen(
        self, agent: Agent, locale: VoiceLocale, text: str | None, action: str
    ) -> VoiceResponse:
        return tw.say_and_listen(
            locale, text, action=action, tuning=self.tuning,
            finish_on_key=end_of_entry_key(agent.handoff_digit),
        )  # fmt: skip

    @staticmethod
    def _time_up(call: calls.Call, agent: Agent) -> bool:
        started = call.connected_at or call.created_at
        return (datetime.now(UTC) - started).total_seconds() >= agent.max_call_seconds
