"""The test caller itself: hanging up leaves nothing of the call behind in the test process."""

from __future__ import annotations

import asyncpg
from livekit.rtc._ffi_client import FfiClient

from tests.standins.openai_api import OpenAIStandIn
from tests.worker.conftest import CallFactory
from tests.worker.test_voice_calls import OUR_NUMBER, voice_line


def _sdk_event_subscriptions() -> int:
    # Private to the SDK, and the only place an open audio stream shows: one left open gets
    # every later event, and logs "error putting to queue" once its loop has closed.
    return len(FfiClient.instance.queue._subscribers)


async def test_hanging_up_after_the_agent_did_leaves_no_subscription_to_the_sdks_events(
    pool: asyncpg.Pool, openai_standin: OpenAIStandIn, calls: CallFactory
) -> None:
    openai_standin.reset()
    await voice_line(pool)
    before = _sdk_event_subscriptions()
    # A number no agent answers: the agent says so and ends the call first.
    phone, _call_sid = await calls.dial(called_number=OUR_NUMBER[:-1] + "9")
    await phone.wait_agent_speaking(after=0.0, within=30)  # listening to the agent's track
    assert _sdk_event_subscriptions() > before
    await phone.wait_hung_up(within=30)
    await phone.hang_up()
    assert _sdk_event_subscriptions() == before
