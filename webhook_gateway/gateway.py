"""Everything the gateway's routes use, built once in the app's lifespan: the process's
services and the SMS and voice machinery on top of them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared import sms
from shared.group_commit import GroupCommit
from shared.services import Services
from shared.sms_replies import SmsReplier
from webhook_gateway.voice_loop import VoiceLoop
from webhook_gateway.voice_recordings import RecordingFetcher

SmsIntake = GroupCommit[sms.InboundSms, sms.Received]


@dataclass
class Gateway:
    services: Services
    voice: VoiceLoop
    recordings: RecordingFetcher
    sms_replier: SmsReplier
    sms_intake: SmsIntake

    @classmethod
    def build(cls, services: Services) -> Gateway:
        replier = SmsReplier(services)
        return cls(
            services=services,
            voice=VoiceLoop(services),
            recordings=RecordingFetcher(services),
            sms_replier=replier,
            sms_intake=_sms_intake(services, replier),
        )

    @property
    def replies_inline(self) -> bool:
        """This process sends the replies it queues (SMS_REPLIES=inline)."""
        return self.services.settings.sms.replies == "inline"

    async def start(self) -> None:
        """Resume what a stopped process left: recording fetches, and inline SMS replies."""
        await self.recordings.resume_pending()
        if self.replies_inline:
            await self.sms_replier.start()

    async def aclose(self) -> None:
        await self.sms_replier.stop()
        await self.services.aclose()


def _sms_intake(services: Services, replier: SmsReplier) -> SmsIntake:
    """Texts that arrive together, stored in one statement (see shared/group_commit.py).

    One batch at a time: under load each batch is larger, and both Postgres and this
    process spend less per text than with two in flight. A batch still running after
    0.25 s (a lock wait; batches take milliseconds) no longer holds the others back.
    In worker mode the queued replies are left for the sms group (no lease taken here)."""
    inline = services.settings.sms.replies == "inline"
    can_send = services.twilio is not None
    lease_seconds = replier.lease_seconds if inline else None

    async def receive(texts: Sequence[sms.InboundSms]) -> list[sms.Received]:
        async with services.pool.acquire() as conn:
            return await sms.receive_many(
                conn, texts, can_send=can_send, lease_seconds=lease_seconds
            )

    return GroupCommit(receive, max_in_flight=1, stalled_after_seconds=0.25)
