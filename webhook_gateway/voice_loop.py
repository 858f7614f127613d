"""The voice call state machine: answer (refuse, hand to LiveKit, or greet), then turns.

The HTTP edge (routes/voice.py) parses Twilio's form fields into the arguments here; this
module decides and returns the TwiML document. Each turn stores the caller's words at once
under `<CallSid>:turn:<n>:user`, and the reply under `...:assistant`, so a Twilio retry of the
same request never stores or generates twice. A slow model never holds a request past the
turn deadline: the caller hears a filler and Twilio comes back on a `<Redirect>` to collect.

Reply tasks live in this process (kept by Services.spawn). Another instance that gets
the collect request finds the reply in Postgres once stored; if the task is not there (other
instance still generating, or a restart), it generates from the stored words itself and the
first stored reply wins: correct, at worst one extra model call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from twilio.twiml.voice_response import VoiceResponse

from shared import admission, agents, calls, conversations, text_chat
from shared.admission import Refusal
from shared.conversations import StoredMessage
from shared.errors import NotFound
from shared.models import Agent
from shared.pg import Connection
from shared.phrases import asks_for_human, line
from shared.provider_ids import greeting_id, reply_turn_id, user_turn_id
from shared.providers.chat import ChatFailed
from shared.routing import InboundTarget
from shared.services import Services
from webhook_gateway import voice_twiml as tw
from webhook_gateway.voice_languages import DEFAULT_TAG, VoiceLocale, voice_locale

logger = logging.getLogger("webhook_gateway.voice")

ReplyKey = tuple[str, int]  # (CallSid, turn)


@dataclass(frozen=True)
class IncomingCall:
    """A call Twilio asks us to answer."""

    call_sid: str
    from_number: str
    to_number: str


class ReplyTasks:
    """Reply generations under way in this process, one per (CallSid, turn).

    A finished reply is in Postgres, so its task is dropped; a failed one (None) is kept until
    the call ends, so a collect tells "failed" apart from "never started here".
    """

    def __init__(self, services: Services) -> None:
        self._services = services
        self._tasks: dict[ReplyKey, asyncio.Task[str | None]] = {}

    def get(self, key: ReplyKey) -> asyncio.Task[str | None] | None:
        return self._tasks.get(key)

    def get_or_start(
        self, key: ReplyKey, coro: Coroutine[Any, Any, str | None]
    ) -> asyncio.Task[str | None]:
        task = self._tasks.get(key)
        if task is not None:
            coro.close()  # not needed: the turn is already being answered
            return task
        task = self._services.spawn(coro, name=f"voice.reply:{key[0]}:{key[1]}")
        self._tasks[key] = task

        def forget(done: asyncio.Task[str | None]) -> None:
            if not done.cancelled() and done.exception() is None and done.result() is not None:
                self._tasks.pop(key, None)

        task.add_done_callback(forget)
        return task

    def forget_call(self, call_sid: str) -> None:
        for key in [k for k in self._tasks if k[0] == call_sid]:
            if self._tasks[key].done():
                del self._tasks[key]

    def __len__(self) -> int:
        return len(self._tasks)


class VoiceLoop:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.settings = services.settings
        self.links = tw.VoiceLinks(services.settings.public_base_url)
        self.tuning = tw.GatherTuning.from_settings(services.settings)
        self.replies = ReplyTasks(services)

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
        text = agent.greeting.strip() or line("default_greeting", locale.phrase_language)
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
        )

    # --- turns -----------------------------------------------------------------------------

    async def turn(self, call_sid: str, turn: int, silent: int, speech: str) -> VoiceResponse:
        """A `<Gather>` result: store the words, answer within the deadline, listen again."""
        speech = speech.strip()
        async with self.services.pool.acquire() as conn:
            loaded = await self._load(conn, call_sid)
            if loaded is None:
                return tw.hang_up()
            call, agent = loaded
            locale = self._locale(agent)
            words = locale.phrase_language
            said = None
            if speech:
                said = await conversations.add_message(
                    conn, call.conversation_id, direction="inbound", role="user", body=speech,
                    provider_id=user_turn_id(call_sid, turn),
                )  # fmt: skip
            if self._time_up(call, agent):
                logger.info("voice.max_call_length", extra={"call_sid": call_sid})
                return tw.say_and_hang_up(locale, line("time_up", words))
            if said is None:
                silent += 1
                if silent >= self.settings.voice.max_silent_turns:
                    logger.info("voice.silence_goodbye", extra={"call_sid": call_sid})
                    return tw.say_and_hang_up(locale, line("goodbye", words))
                return self._listen(locale, line("reprompt", words), self.links.turn(turn, silent))
            if agent.handoff_number and asks_for_human(speech, words):
                return await self._hand_off(conn, call, agent, locale, turn)
            stored = await conversations.get_message_by_provider_id(
                conn, reply_turn_id(call_sid, turn)
            )
        if stored is not None:  # Twilio retried a turn we already answered
            return self._listen(locale, stored.body, self.links.turn(turn + 1))
        task = self.replies.get_or_start((call_sid, turn), self._generate(call, agent, turn, said))
        return await self._say_reply(task, call_sid, turn, 0, locale)

    async def collect(self, call_sid: str, turn: int, wait: int) -> VoiceResponse:
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
                return self._listen(locale, stored.body, self.links.turn(turn + 1))
            task = self.replies.get((call_sid, turn))
            if task is None:
                said = await conversations.get_message_by_provider_id(
                    conn, user_turn_id(call_sid, turn)
                )
                if said is None:  # nothing to answer: ask again
                    return self._listen(
                        locale, line("reprompt", locale.phrase_language), self.links.turn(turn)
                    )
                logger.info("voice.reply_resumed", extra={"call_sid": call_sid, "turn": turn})
                task = self.replies.get_or_start(
                    (call_sid, turn), self._generate(call, agent, turn, said)
                )
        return await self._say_reply(task, call_sid, turn, wait, locale)

    async def _say_reply(
        self,
        task: asyncio.Task[str | None],
        call_sid: str,
        turn: int,
        wait: int,
        locale: VoiceLocale,
    ) -> VoiceResponse:
        words = locale.phrase_language
        deadline = (
            self.settings.voice.turn_deadline_seconds
            if wait == 0
            else self.settings.voice.collect_wait_seconds
        )
        try:
            reply = await asyncio.wait_for(asyncio.shield(task), timeout=deadline)
        except TimeoutError:
            if wait >= self.settings.voice.max_collect_waits:
                logger.warning("voice.reply_gave_up", extra={"call_sid": call_sid, "turn": turn})
                return self._listen(locale, line("apology", words), self.links.turn(turn + 1))
            logger.info("voice.reply_slow", extra={"call_sid": call_sid, "turn": turn})
            filler = line("filler" if wait == 0 else "still_waiting", words)
            return tw.say_then_redirect(locale, filler, self.links.collect(turn, wait + 1))
        if reply is None:
            return self._listen(locale, line("apology", words), self.links.turn(turn + 1))
        return self._listen(locale, reply, self.links.turn(turn + 1))

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

    async def _hand_off(
        self,
        conn: Connection,
        call: calls.Call,
        agent: Agent,
        locale: VoiceLocale,
        turn: int,
    ) -> VoiceResponse:
        assert agent.handoff_number
        text = line("connecting", locale.phrase_language)
        await conversations.add_message(
            conn, call.conversation_id, direction="outbound", role="assistant", body=text,
            provider_id=reply_turn_id(call.call_sid, turn),
        )  # fmt: skip
        await conversations.mark_handed_off(conn, call.conversation_id)
        logger.info(
            "voice.handed_off",
            extra={"call_sid": call.call_sid, "conversation": str(call.conversation_id)},
        )
        action = self.links.handoff_status(turn + 1)
        return tw.dial_person(locale, text, agent.handoff_number, action=action)

    async def handoff_ended(self, call_sid: str, dial_status: str, turn: int) -> VoiceResponse:
        """The person's leg ended: the call is over, or nobody answered and the agent resumes."""
        if dial_status in tw.SIP_LEG_ANSWERED:
            return tw.hang_up()
        async with self.services.pool.acquire() as conn:
            loaded = await self._load(conn, call_sid)
        if loaded is None:
            return tw.hang_up()
        locale = self._locale(loaded[1])
        text = line("transfer_failed", locale.phrase_language)
        return self._listen(locale, text, self.links.turn(turn))

    # --- callbacks -------------------------------------------------------------------------

    async def call_status(self, call_sid: str, status: str, duration_seconds: int | None) -> None:
        """Call progress: a terminal status closes the call and charges its minutes once."""
        async with self.services.pool.acquire() as conn:
            if status in calls.TERMINAL_STATUSES:
                charge = await calls.finish_call(
                    conn, call_sid, status=status, duration_seconds=duration_seconds
                )
                self.replies.forget_call(call_sid)
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

    def _listen(self, locale: VoiceLocale, text: str, action: str) -> VoiceResponse:
        return tw.say_and_listen(locale, text, action=action, tuning=self.tuning)

    @staticmethod
    def _time_up(call: calls.Call, agent: Agent) -> bool:
        started = call.connected_at or call.created_at
        return (datetime.now(UTC) - started).total_seconds() >= agent.max_call_seconds
